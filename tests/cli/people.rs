//! `outrigger login`, `logout`, `whoami`, `org`, `member`, `apikey` and `audit`: people signing in with their own
//! credentials, working in their organization with the roles they were given.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{self, start, RunExt, Server};

const ANN: &str = "ann@example.com";
const ANN_PASSWORD: &str = "correct horse battery staple";
const VIC: &str = "vic@example.com";
const VIC_PASSWORD: &str = "violet velvet vanilla";

/// Someone running the CLI against `server` with a configuration directory of their own (never the real home)
/// and, for the operator, the operator token.
struct Person<'a> {
    server: &'a Server,
    /// Holds the configuration directory, which the CLI creates.
    home: tempfile::TempDir,
    /// An empty data directory: the all-in-one server's token file is never found by accident.
    data_dir: tempfile::TempDir,
    operator: bool,
}

impl<'a> Person<'a> {
    fn new(server: &'a Server) -> Self {
        let dir = || tempfile::tempdir().expect("creating a directory");
        Self { server, home: dir(), data_dir: dir(), operator: false }
    }

    fn operator(server: &'a Server) -> Self {
        Self { operator: true, ..Self::new(server) }
    }

    fn outrigger<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut command = harness::outrigger(args);
        command
            .env("OUTRIGGER_URL", self.server.url())
            .env("OUTRIGGER_CONFIG_DIR", self.config_dir())
            .env("OUTRIGGER_DATA_DIR", self.data_dir.path());
        if self.operator {
            command.env("OUTRIGGER_TOKEN", self.server.admin_token());
        }
        command
    }

    fn login(&self, email: &str, password: &str) -> String {
        self.outrigger(["login", "--email", email, "--password-stdin"]).stdin(typed(password)).succeeds()
    }

    fn config_dir(&self) -> PathBuf {
        self.home.path().join("outrigger")
    }

    fn credentials(&self) -> PathBuf {
        self.config_dir().join("credentials.json")
    }

    fn stored(&self) -> Value {
        let text = std::fs::read_to_string(self.credentials()).expect("a stored credential");
        serde_json::from_str(&text).expect("the credential file is JSON")
    }

    /// Grants `role` in `org` to a user, made with `password` (the operator does this).
    fn add_user(&self, org: &str, email: &str, password: &str, role: &str) -> Value {
        let args = ["member", "add", "--org", org, "--email", email, "--password-stdin", "--role", role, "-o", "json"];
        self.outrigger(args).stdin(typed(password)).json()
    }
}

/// Standard input holding `text` and a newline, as typed or piped.
fn typed(text: &str) -> Stdio {
    let mut file = tempfile::tempfile().expect("creating a file for standard input");
    writeln!(file, "{text}").expect("writing standard input");
    file.seek(SeekFrom::Start(0)).expect("rewinding standard input");
    Stdio::from(file)
}

fn project_names(listed: &Value) -> Vec<&str> {
    listed["items"].as_array().expect("items").iter().filter_map(|project| project["name"].as_str()).collect()
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).expect("the path exists").permissions().mode() & 0o777
}

#[test]
fn members_sign_in_and_work_in_their_organization_with_their_role() {
    let (_data_dir, server) = start();
    let operator = Person::operator(&server);
    let created = operator.outrigger(["org", "create", "acme"]).succeeds();
    assert!(created.starts_with("NAME") && created.contains("acme"), "{created}");
    let added = operator.add_user("acme", ANN, ANN_PASSWORD, "operator");
    assert_eq!((&added["email"], &added["roles"]), (&json!(ANN), &json!([{"role": "operator"}])), "{added}");
    operator.add_user("acme", VIC, VIC_PASSWORD, "viewer");
    operator.outrigger(["project", "create", "legacy"]).succeeds();

    let ann = Person::new(&server);
    let signed_in = ann.login(ANN, ANN_PASSWORD);
    assert!(signed_in.contains("acme") && signed_in.contains(ANN), "{signed_in}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&ann.credentials()), 0o600, "only its owner may read the credential");
        assert_eq!(mode(&ann.config_dir()), 0o700, "the CLI creates the directory for its owner only");
    }
    let stored = ann.stored();
    assert_eq!((&stored["url"], &stored["org"]), (&json!(format!("{}/", server.url())), &json!("acme")), "{stored}");
    assert!(stored["accessToken"].is_string() && stored["refreshToken"].is_string(), "{stored}");
    assert!(stored["expiresAt"].is_string() && stored.get("apiKey").is_none(), "{stored}");

    let me = ann.outrigger(["whoami", "-o", "json"]).json();
    assert_eq!((&me["kind"], &me["email"]), (&json!("user"), &json!(ANN)), "{me}");
    assert_eq!((&me["organization"], &me["role"]), (&json!("acme"), &json!("operator")), "{me}");
    let table = ann.outrigger(["whoami"]).succeeds();
    assert!(table.starts_with("KIND") && table.contains(ANN) && table.contains("acme"), "{table}");

    ann.outrigger(["project", "create", "shop"]).succeeds();
    ann.outrigger(["appid", "create", "orders", "--project", "shop"]).succeeds();
    assert_eq!(project_names(&ann.outrigger(["project", "list", "-o", "json"]).json()), ["shop"]);
    assert_eq!(project_names(&operator.outrigger(["project", "list", "-o", "json"]).json()), ["legacy"]);
    let in_acme = operator.outrigger(["project", "list", "--org", "acme", "-o", "json"]).json();
    assert_eq!(project_names(&in_acme), ["shop"]);

    // Without --password-stdin and without a terminal, the password is read from standard input all the same.
    let vic = Person::new(&server);
    vic.outrigger(["login", "--email", VIC]).stdin(typed(VIC_PASSWORD)).succeeds();
    assert_eq!(project_names(&vic.outrigger(["project", "list", "-o", "json"]).json()), ["shop"]);
    let refused = vic.outrigger(["project", "create", "mine"]).fails();
    assert!(refused.contains("403") && refused.contains("viewer"), "{refused}");
    assert!(refused.contains("operator or higher"), "says what role it takes: {refused}");
    let wrong = Person::new(&server).outrigger(["login", "--email", VIC]).stdin(typed("not the password")).fails();
    assert!(wrong.contains("401") && wrong.contains("wrong email or password"), "{wrong}");

    let audit = operator.outrigger(["audit", "--org", "acme", "--action", "project.create", "-o", "json"]).json();
    let events = audit["items"].as_array().expect("items");
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!((&events[0]["after"]["name"], &events[0]["actor"]["id"]), (&json!("shop"), &me["id"]), "{audit}");
    let actions = |args: &[&str]| -> Vec<String> {
        let mut command = operator.outrigger(["audit", "--org", "acme", "-o", "json"]);
        let audit = command.args(args).json();
        audit["items"].as_array().expect("items").iter().map(|event| event["action"].to_string()).collect()
    };
    assert_eq!(actions(&["--project", "shop"]), [r#""appid.create""#, r#""project.create""#]);
    assert_eq!(actions(&["--actor", me["id"].as_str().unwrap()]), [r#""appid.create""#, r#""project.create""#]);
    let trail = operator.outrigger(["audit", "--org", "acme"]).succeeds();
    let rows: Vec<&str> = trail.lines().collect();
    assert!(rows[0].starts_with("AT") && rows[0].contains("ACTION"), "{trail}");
    assert!(rows[1].contains("appid.create") && rows[1].contains("shop"), "newest first:\n{trail}");
    assert!(rows[2].contains("project.create") && rows[2].contains(ANN), "newest first:\n{trail}");
    assert_eq!(rows.iter().filter(|row| row.contains("member.add")).count(), 2, "{trail}");
    let limited = operator.outrigger(["audit", "--org", "acme", "--limit", "2", "-o", "json"]).json();
    assert_eq!(limited["items"].as_array().map(Vec::len), Some(2), "{limited}");

    let (access, refresh) = (stored["accessToken"].as_str().unwrap(), stored["refreshToken"].as_str().unwrap());
    let signed_out = ann.outrigger(["logout"]).succeeds();
    assert!(signed_out.contains("Signed out"), "{signed_out}");
    assert!(!ann.credentials().exists(), "logout removes the stored credential");
    let error = ann.outrigger(["whoami"]).fails();
    assert!(error.contains("outrigger login"), "{error}");
    let ended = ann.outrigger(["whoami", "--token", access]).fails();
    assert!(ended.contains("401"), "the session's access token stopped working: {ended}");
    let (status, _) = server.api(Method::POST, "/auth/refresh", Some(json!({"refreshToken": refresh})));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session's refresh token stopped working");
    assert!(ann.outrigger(["logout"]).succeeds().contains("Not signed in"));
}

#[test]
fn api_keys_sign_in_until_revoked() {
    let (_data_dir, server) = start();
    let operator = Person::operator(&server);
    operator.outrigger(["org", "create", "acme"]).succeeds();
    operator.add_user("acme", ANN, ANN_PASSWORD, "developer");
    let ann = Person::new(&server);
    ann.login(ANN, ANN_PASSWORD);

    let created = ann.outrigger(["apikey", "create", "ci", "--expires-in-days", "30"]).succeeds();
    assert!(created.starts_with("ID") && created.contains("cannot be shown again"), "{created}");
    let key = created.lines().find_map(|line| line.strip_prefix("API key: ")).expect("the key is printed").to_owned();
    assert!(key.starts_with("ork_"), "{created}");
    let listed = ann.outrigger(["apikey", "list", "-o", "json"]).json();
    let keys = listed["items"].as_array().expect("items");
    assert_eq!(keys.len(), 1, "{listed}");
    assert!(keys[0]["expiresAt"].is_string() && keys[0].get("key").is_none(), "the secret is shown once: {listed}");

    let ci = Person::new(&server);
    let signed_in = ci.outrigger(["login", "--api-key", &key]).succeeds();
    assert!(signed_in.contains(ANN) && signed_in.contains("acme"), "{signed_in}");
    let stored = ci.stored();
    assert_eq!(stored["apiKey"], json!(key));
    assert!(stored.get("accessToken").is_none(), "{stored}");
    #[cfg(unix)]
    assert_eq!(mode(&ci.credentials()), 0o600);
    let me = ci.outrigger(["whoami", "-o", "json"]).json();
    assert_eq!((&me["email"], &me["organization"]), (&json!(ANN), &json!("acme")), "{me}");
    ci.outrigger(["project", "list"]).succeeds();

    let bogus = Person::new(&server);
    let refused = bogus.outrigger(["login", "--api-key", "ork_0000"]).fails();
    assert!(refused.contains("401"), "{refused}");
    assert!(!bogus.credentials().exists(), "a key that does not work is not stored");

    let id = keys[0]["id"].as_str().expect("id");
    assert!(ann.outrigger(["apikey", "revoke", id]).succeeds().contains("revoked"));
    let revoked = ci.outrigger(["whoami"]).fails();
    assert!(revoked.contains("401") && revoked.contains("outrigger login"), "{revoked}");
    let signed_out = ci.outrigger(["logout"]).succeeds();
    assert!(signed_out.contains("until it is revoked") && !ci.credentials().exists(), "{signed_out}");

    // An admin makes keys for the organization's service accounts; removing the account ends its keys.
    let added =
        ["member", "add", "--org", "acme", "--service-account", "deployer", "--role", "developer", "-o", "json"];
    let deployer = operator.outrigger(added).json();
    let account = deployer["id"].as_str().expect("id");
    let args = ["apikey", "create", "deploy", "--org", "acme", "--service-account", account, "-o", "json"];
    let deploy_key = operator.outrigger(args).json()["key"].as_str().expect("the key").to_owned();
    let robot = Person::new(&server);
    robot.outrigger(["login", "--api-key", &deploy_key]).succeeds();
    assert_eq!(robot.outrigger(["whoami", "-o", "json"]).json()["kind"], "serviceAccount");
    let members = operator.outrigger(["member", "list", "--org", "acme"]).succeeds();
    assert!(members.starts_with("ID") && members.contains("deployer") && members.contains(ANN), "{members}");
    operator.outrigger(["member", "remove", account, "--org", "acme"]).succeeds();
    let listed = operator.outrigger(["member", "list", "--org", "acme", "-o", "json"]).json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
    assert!(robot.outrigger(["whoami"]).fails().contains("401"));
}

#[test]
fn org_use_chooses_the_organization_commands_work_in() {
    let (_data_dir, server) = start();
    let operator = Person::operator(&server);
    for org in ["acme", "beta"] {
        operator.outrigger(["org", "create", org]).succeeds();
    }
    let chosen = operator.outrigger(["org", "use", "acme"]).succeeds();
    assert!(chosen.contains("acme"), "{chosen}");
    let stored = operator.stored();
    assert_eq!(stored["org"], "acme");
    assert!(stored.get("accessToken").is_none() && stored.get("apiKey").is_none(), "no credential: {stored}");
    #[cfg(unix)]
    assert_eq!(mode(&operator.credentials()), 0o600);
    operator.outrigger(["project", "create", "one"]).succeeds();
    operator.outrigger(["org", "use", "beta"]).succeeds();
    operator.outrigger(["project", "create", "two"]).succeeds();
    assert_eq!(project_names(&operator.outrigger(["project", "list", "-o", "json"]).json()), ["two"]);
    let in_acme = operator.outrigger(["project", "list", "--org", "acme", "-o", "json"]).json();
    assert_eq!(project_names(&in_acme), ["one"]);
    let in_acme = operator.outrigger(["project", "list", "-o", "json"]).env("OUTRIGGER_ORG", "acme").json();
    assert_eq!(project_names(&in_acme), ["one"]);
    assert_eq!(operator.outrigger(["whoami", "-o", "json"]).json()["organization"], "beta");
    let listed = operator.outrigger(["org", "list"]).succeeds();
    let current: Vec<&str> = listed.lines().filter(|row| row.starts_with('*')).collect();
    assert!(current.len() == 1 && current[0].contains("beta"), "{listed}");
    assert!(listed.contains("acme") && listed.contains("default"), "{listed}");
    let missing = operator.outrigger(["org", "use", "nosuch"]).fails();
    assert!(missing.contains("404"), "{missing}");
    assert_eq!(operator.stored()["org"], "beta", "a failed `org use` changes nothing");

    let quotas = operator.outrigger(["org", "quotas", "acme", "--projects", "1", "-o", "json"]).json();
    assert_eq!(quotas, json!({"projects": 1, "appIds": null, "requestsPerSecond": null}));
    let full = operator.outrigger(["project", "create", "three", "--org", "acme"]).fails();
    assert!(full.contains("may have 1 projects"), "{full}");
    let quotas = operator.outrigger(["org", "quotas", "acme", "--requests-per-second", "5", "-o", "json"]).json();
    assert_eq!((&quotas["projects"], &quotas["requestsPerSecond"]), (&json!(1), &json!(5)), "{quotas}");
    let table = operator.outrigger(["org", "quotas", "acme", "--projects", "default", "--app-ids", "0"]).succeeds();
    let limit = |quota: &str| table.lines().find(|row| row.starts_with(quota)).map(|row| row.trim_end().to_owned());
    assert!(limit("projects ").is_some_and(|row| row.ends_with(" no limit")), "{table}");
    assert!(limit("appIds ").is_some_and(|row| row.ends_with(" no limit")), "{table}");
    assert!(limit("requestsPerSecond ").is_some_and(|row| row.ends_with(" 5")), "{table}");
    assert_eq!(operator.outrigger(["org", "get", "acme", "-o", "json"]).json()["quotas"]["requestsPerSecond"], 5);
    let bad = operator.outrigger(["org", "quotas", "acme", "--projects", "many"]).fails();
    assert!(bad.contains("neither a whole number nor `default`"), "{bad}");

    operator.outrigger(["org", "create", "empty"]).succeeds();
    operator.outrigger(["org", "delete", "empty"]).succeeds();
    assert!(!operator.outrigger(["org", "list"]).succeeds().contains("empty"));

    // A user in two organizations signs in to the first by name and switches with `org use`.
    operator.add_user("acme", ANN, ANN_PASSWORD, "developer");
    operator.add_user("beta", ANN, ANN_PASSWORD, "viewer");
    let ann = Person::new(&server);
    assert!(ann.login(ANN, ANN_PASSWORD).contains("organization acme"));
    ann.outrigger(["org", "use", "beta"]).succeeds();
    let me = ann.outrigger(["whoami", "-o", "json"]).json();
    assert_eq!((&me["organization"], &me["role"]), (&json!("beta"), &json!("viewer")), "{me}");
    assert_eq!(project_names(&ann.outrigger(["project", "list", "-o", "json"]).json()), ["two"]);
    let others = ann.outrigger(["org", "use", "default"]).fails();
    assert!(others.contains("404"), "an organization she holds no role in is not found: {others}");
    let session = ann.stored();
    assert_eq!(session["org"], "beta");
    assert!(session["accessToken"].is_string(), "`org use` keeps the session: {session}");

    assert!(operator.outrigger(["logout"]).succeeds().contains("Signed out"));
    assert!(!operator.credentials().exists());
    let in_default = operator.outrigger(["project", "list", "-o", "json"]).json();
    assert!(project_names(&in_default).is_empty(), "back in `default`: {in_default}");
}

#[test]
fn an_access_token_about_to_expire_is_refreshed_before_use() {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let token = harness::random_token();
    // Shorter than the CLI's 30-second margin: every command after login refreshes first.
    let ttl = [("OUTRIGGER_ACCESS_TOKEN_TTL_SECS", "10")];
    let server = Server::start_role(&[], &ttl, data_dir.path(), Some(&token));
    let operator = Person::operator(&server);
    operator.outrigger(["org", "create", "acme"]).succeeds();
    operator.add_user("acme", ANN, ANN_PASSWORD, "developer");
    let ann = Person::new(&server);
    ann.login(ANN, ANN_PASSWORD);
    let first = ann.stored();

    assert_eq!(ann.outrigger(["whoami", "-o", "json"]).json()["email"], ANN);
    let second = ann.stored();
    assert_ne!(first["refreshToken"], second["refreshToken"], "refreshed and stored: {second}");
    assert_eq!(second["org"], "acme", "{second}");
    #[cfg(unix)]
    assert_eq!(mode(&ann.credentials()), 0o600, "the refreshed credential is as private");
    let (status, _) = server.api(Method::POST, "/auth/refresh", Some(json!({"refreshToken": first["refreshToken"]})));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a refresh token works once");

    ann.outrigger(["project", "list"]).succeeds();
    assert_ne!(ann.stored()["refreshToken"], second["refreshToken"]);
}

/// What a browser does with the address `outrigger login --sso` prints: follows every redirect, the identity
/// provider's included; `http://control.test` (the redirect URL registered at the provider) is this server.
/// Answers the last address and its page.
async fn browse(start: &str, server: &str) -> (String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut url = start.to_owned();
    for _ in 0..10 {
        let answer = client.get(&url).send().await.expect("the browser reaches every hop");
        if !answer.status().is_redirection() {
            assert_eq!(answer.status(), StatusCode::OK, "{url}");
            return (url, answer.text().await.unwrap());
        }
        let next = answer.headers()["location"].to_str().unwrap();
        url = next.replace("http://control.test", server);
    }
    panic!("more than 10 redirects from {start}");
}

#[test]
fn single_sign_on_in_a_browser_stores_a_session() {
    use outrigger_test_oidc::{Provider, CLIENT_ID, CLIENT_SECRET, REDIRECT_URL};
    use std::io::BufRead as _;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let provider = runtime.block_on(Provider::start());
    let data_dir = tempfile::tempdir().unwrap();
    let env = [
        ("OUTRIGGER_OIDC_ISSUER", provider.issuer.as_str()),
        ("OUTRIGGER_OIDC_CLIENT_ID", CLIENT_ID),
        ("OUTRIGGER_OIDC_CLIENT_SECRET", CLIENT_SECRET),
        ("OUTRIGGER_OIDC_REDIRECT_URL", REDIRECT_URL),
    ];
    let server = Server::start_role(&[], &env, data_dir.path(), Some(&harness::random_token()));
    let operator = Person::operator(&server);
    operator.outrigger(["org", "create", "acme"]).succeeds();
    // Added without a password: this user signs in through the provider only.
    operator
        .outrigger(["member", "add", "--org", "acme", "--email", "sso@example.com", "--role", "developer"])
        .succeeds();
    provider.sign_in_as("sso@example.com");

    let ann = Person::new(&server);
    let mut login = ann.outrigger(["login", "--sso", "--no-browser"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(login.stdout.take().unwrap()).lines();
    let address =
        lines.find_map(|line| line.ok().filter(|line| line.starts_with("http"))).expect("the address to open");
    let (last, page) = runtime.block_on(browse(&address, &server.url()));
    assert!(page.contains("Signed in"), "{page}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(login.wait().unwrap().success(), "{rest:?}");
    assert!(rest.iter().any(|line| line.contains("as sso@example.com")), "{rest:?}");

    let me = ann.outrigger(["whoami", "-o", "json"]).json();
    assert_eq!(
        (me["email"].as_str(), me["organization"].as_str(), me["role"].as_str()),
        (Some("sso@example.com"), Some("acme"), Some("developer"))
    );
    ann.outrigger(["project", "list"]).succeeds();
    // The refresh token the browser carried back was swapped at once: the copy in its history is used up.
    let history = reqwest::Url::parse(&last).unwrap();
    let (_, carried) = history.query_pairs().find(|(name, _)| name == "refreshToken").expect("a refresh token");
    let body = json!({ "refreshToken": carried });
    let reuse = runtime
        .block_on(reqwest::Client::new().post(format!("{}/api/v1/auth/refresh", server.url())).json(&body).send());
    assert_eq!(reuse.unwrap().status(), StatusCode::UNAUTHORIZED);
}
