//! Signing in and out (`outrigger login`, `logout`, `whoami`), and choosing what every other command sends:
//! the credential (`--token` first, then what `login` stored, then the all-in-one server's token file), a fresh
//! access token when the stored one is about to expire, and the organization to work in.

use std::io::{ErrorKind, IsTerminal as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::{ArgGroup, Args};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{ApiClient, CredentialKind};
use super::credentials::{CredentialFile, Stored};
use super::output::{cell, emit, OutputArgs, Table};
use super::ConnectionArgs;

/// Where the control API is when neither `--url` nor a stored sign-in says.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// An access token this close to expiring is refreshed before use, so that it cannot lapse during the command
/// (or on a server whose clock is a little ahead).
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("credential").required(true).args(["email", "api_key", "sso"])))]
pub struct LoginArgs {
    /// Sign in as this user; the password is asked for on the terminal (without echo), or read from standard
    /// input when there is no terminal
    #[arg(long)]
    email: Option<String>,
    /// Read the password from the first line of standard input, even on a terminal
    #[arg(long, requires = "email")]
    password_stdin: bool,
    /// Sign in with this API key (`ork_...`); it is checked with the control API before it is stored
    #[arg(long)]
    api_key: Option<String>,
    /// Sign in through the installation's single-sign-on provider, in a browser
    #[arg(long)]
    sso: bool,
    /// With --sso: only print the address to open, do not start a browser
    #[arg(long, requires = "sso")]
    no_browser: bool,
}

#[derive(Args, Debug)]
pub struct WhoamiArgs {
    #[command(flatten)]
    output: OutputArgs,
}

/// The answer of `POST /auth/login` and `/auth/refresh`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionTokens {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
    organization: String,
}

impl SessionTokens {
    fn store_in(self, stored: Stored) -> Stored {
        Stored {
            access_token: Some(self.access_token),
            refresh_token: Some(self.refresh_token),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(self.expires_in)),
            api_key: None,
            ..stored
        }
    }
}

fn read_tokens(answer: Value) -> anyhow::Result<SessionTokens> {
    serde_json::from_value(answer).context("the control API answered the sign-in without session tokens")
}

/// The client every command but login and logout uses (see the module's opening comment).
pub async fn connect(connection: ConnectionArgs) -> anyhow::Result<ApiClient> {
    // Without a configuration directory nothing can have been stored; that matters only if `--token` is absent.
    let file = CredentialFile::locate().ok();
    let stored = match &file {
        Some(file) => file.load()?,
        None => None,
    };
    let url = url_in_use(connection.url, stored.as_ref())?;
    let stored = stored.filter(|stored| same_url(stored, &url));
    let org = connection.org.or_else(|| stored.as_ref().and_then(|stored| stored.org.clone()));
    let api = ApiClient::new(url)?.in_org(org);
    let (token, kind) = match (connection.token, stored, file) {
        (Some(token), _, _) => (token, CredentialKind::OperatorToken),
        (None, Some(Stored { api_key: Some(key), .. }), _) => (key, CredentialKind::ApiKey),
        (None, Some(stored @ Stored { access_token: Some(_), .. }), Some(file)) => {
            (fresh_access_token(&file, stored).await?, CredentialKind::Session)
        }
        (None, _, _) => (token_from_data_dir()?, CredentialKind::OperatorToken),
    };
    Ok(api.with_credential(token, kind))
}

/// `--url` when given, else the URL the stored credential belongs to, else the local default.
fn url_in_use(given: Option<Url>, stored: Option<&Stored>) -> anyhow::Result<Url> {
    match (given, stored) {
        (Some(url), _) => Ok(url),
        (None, Some(stored)) => {
            stored.url.parse().with_context(|| format!("the stored credential's URL '{}' is not a URL", stored.url))
        }
        (None, None) => Ok(DEFAULT_URL.parse().expect("the default URL parses")),
    }
}

fn same_url(stored: &Stored, url: &Url) -> bool {
    stored.url.parse::<Url>().is_ok_and(|stored| stored == *url)
}

/// The stored session's access token, refreshed first (and the new pair stored) when it is about to expire.
async fn fresh_access_token(file: &CredentialFile, stored: Stored) -> anyhow::Result<String> {
    let fresh = |stored: &Stored| stored.expires_at.is_some_and(|at| at - Utc::now() > REFRESH_MARGIN);
    if fresh(&stored) {
        return Ok(stored.access_token.expect("a session's stored credential has an access token"));
    }
    let Some(refresh_token) = stored.refresh_token.clone() else {
        bail!("the stored session has expired: sign in again with `outrigger login`")
    };
    let url: Url = stored.url.parse().context("the stored credential's URL")?;
    let api = ApiClient::new(url)?;
    let answer = api.send_json(Method::POST, &["auth", "refresh"], &json!({ "refreshToken": refresh_token })).await;
    match answer {
        Ok(answer) => {
            // The stored organization stays: `org use` may have chosen another than the session's own.
            let stored = read_tokens(answer)?.store_in(stored);
            file.save(&stored)?;
            Ok(stored.access_token.expect("just stored"))
        }
        Err(error) => {
            // A refresh token works once: a command run at the same moment may have used it and stored the
            // pair it got, which this command can use as well.
            match file.load()? {
                Some(now) if now.refresh_token != stored.refresh_token && fresh(&now) => {
                    Ok(now.access_token.expect("a fresh session has an access token"))
                }
                _ => Err(error.context(format!("refreshing the session stored in {}", file.path().display()))),
            }
        }
    }
}

/// Reads the operator token the all-in-one server generated on first start, so that a local
/// `outrigger project create` works without copying the token around. The data directory is the
/// server's setting (`OUTRIGGER_DATA_DIR`), read here rather than declared as a flag so that the
/// client does not claim an option name the server's own configuration may use.
fn token_from_data_dir() -> anyhow::Result<String> {
    let data_dir = std::env::var_os("OUTRIGGER_DATA_DIR").map_or_else(|| PathBuf::from(".outrigger"), PathBuf::from);
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(contents) if !contents.trim().is_empty() => Ok(contents.trim().to_owned()),
        Ok(_) => bail!("{} is empty: set OUTRIGGER_TOKEN (or pass --token) to the operator token", path.display()),
        Err(error) if error.kind() == ErrorKind::NotFound => bail!(
            "no credential: sign in with `outrigger login`, or set OUTRIGGER_TOKEN (or pass --token) to the \
             operator token; without either the token is read from {}, which does not exist (set \
             OUTRIGGER_DATA_DIR to the server's data directory)",
            path.display()
        ),
        Err(error) => Err(error).with_context(|| format!("reading the operator token from {}", path.display())),
    }
}

/// A password: asked for on the terminal without echo, or the first line of standard input when `from_stdin`
/// or when standard input is not a terminal (a pipe, a file).
pub fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if !from_stdin && std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("reading the password from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("no password given: type it when asked, or pipe it in with --password-stdin");
    }
    Ok(password)
}

pub async fn login(connection: ConnectionArgs, args: LoginArgs) -> anyhow::Result<()> {
    let file = CredentialFile::locate()?;
    // A file that cannot be read is replaced: signing in is how to recover from it.
    let previous = file.load().ok().flatten();
    let url = url_in_use(connection.url, previous.as_ref())?;
    let api = ApiClient::new(url.clone())?;
    let empty = Stored { url: url.to_string(), ..Stored::default() };
    let (stored, who) = match (args.email, args.api_key) {
        (None, None) if args.sso => {
            let refresh_token =
                super::sso::refresh_token_from_browser(&api, connection.org.as_deref(), !args.no_browser).await?;
            // Swapped at once: the copy in the browser's history is used up.
            let body = json!({ "refreshToken": refresh_token });
            let tokens = read_tokens(api.send_json(Method::POST, &["auth", "refresh"], &body).await?)?;
            let org = tokens.organization.clone();
            let stored = tokens.store_in(Stored { org: Some(org), ..empty });
            let token = stored.access_token.clone().expect("just signed in");
            let me = ApiClient::new(url.clone())?
                .with_credential(token, CredentialKind::Session)
                .get_json(&["auth", "whoami"])
                .await?;
            (stored, caller_name(&me))
        }
        (Some(email), _) => {
            let password = read_password(args.password_stdin)?;
            let mut body = json!({ "email": email, "password": password });
            if let Some(org) = &connection.org {
                body["organization"] = org.as_str().into();
            }
            let tokens = read_tokens(api.send_json(Method::POST, &["auth", "login"], &body).await?)?;
            let org = tokens.organization.clone();
            (tokens.store_in(Stored { org: Some(org), ..empty }), email)
        }
        (None, Some(key)) => {
            let api = api.with_credential(key.clone(), CredentialKind::ApiKey).in_org(connection.org);
            let me = api.get_json(&["auth", "whoami"]).await?;
            let org = me["organization"].as_str().map(str::to_owned);
            (Stored { api_key: Some(key), org, ..empty }, caller_name(&me))
        }
        (None, None) => unreachable!("clap requires --email, --api-key or --sso"),
    };
    file.save(&stored)?;
    let org = stored.org.as_deref().unwrap_or("-");
    println!("Signed in to {url} as {who}, working in organization {org}.");
    println!("The credential is stored in {}; `outrigger logout` removes it.", file.path().display());
    if connection.token.is_some() {
        eprintln!("note: --token/OUTRIGGER_TOKEN is set and comes first: unset it for commands to use this sign-in");
    }
    Ok(())
}

/// Ends the stored session, if it is one, and forgets the stored credential and organization.
pub async fn logout() -> anyhow::Result<()> {
    let file = CredentialFile::locate()?;
    match file.load() {
        Ok(Some(stored)) if stored.access_token.is_some() => end_session(&file, stored).await,
        Ok(Some(Stored { api_key: Some(_), .. })) => {
            println!("The API key keeps working until it is revoked (`outrigger apikey revoke ID`).");
        }
        Ok(_) => {}
        Err(error) => eprintln!("warning: {error:#}"),
    }
    if file.remove()? {
        println!("Signed out: removed {}.", file.path().display());
    } else {
        println!("Not signed in: {} does not exist.", file.path().display());
    }
    Ok(())
}

/// Ends the session at the server; a failure is only reported, as the tokens are forgotten here regardless.
async fn end_session(file: &CredentialFile, stored: Stored) {
    let url = stored.url.clone();
    let ended = async {
        let token = fresh_access_token(file, stored).await?;
        let api = ApiClient::new(url.parse()?)?.with_credential(token, CredentialKind::Session);
        api.send(api.request(Method::POST, api.url(&["auth", "logout"]))).await
    };
    if let Err(error) = ended.await {
        eprintln!(
            "warning: the session at {url} could not be ended ({error:#}); its tokens are forgotten here and \
             expire on their own"
        );
    }
}

/// How whoami names the caller: an email, a service account's name, or `operator`.
fn caller_name(me: &Value) -> String {
    me["email"].as_str().or(me["name"].as_str()).or(me["kind"].as_str()).unwrap_or("-").to_owned()
}

pub async fn whoami(api: &ApiClient, args: WhoamiArgs) -> anyhow::Result<()> {
    let me = api.get_json(&["auth", "whoami"]).await?;
    emit(args.output.output, &me, |me| {
        Table::single(&["KIND", "NAME", "ID", "ORGANIZATION", "ROLE", "PROJECT ROLES"], me, |me| {
            let project_roles: Vec<String> = me["projectRoles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|grant| format!("{} on {}", cell(grant, "/role"), cell(grant, "/project")))
                .collect();
            vec![
                cell(me, "/kind"),
                caller_name(me),
                cell(me, "/id"),
                cell(me, "/organization"),
                cell(me, "/role"),
                if project_roles.is_empty() { "-".to_owned() } else { project_roles.join(", ") },
            ]
        })
    })
}

/// Makes `org` the organization later commands work in at `url`, in the credentials file.
pub fn remember_org(url: &Url, org: &str) -> anyhow::Result<PathBuf> {
    let file = CredentialFile::locate()?;
    let stored = match file.load()? {
        Some(stored) if same_url(&stored, url) => Stored { org: Some(org.to_owned()), ..stored },
        Some(stored) if stored.signed_in() => bail!(
            "{} holds a sign-in to {}, not {url}: sign out of it first (`outrigger logout`)",
            file.path().display(),
            stored.url
        ),
        _ => Stored { url: url.to_string(), org: Some(org.to_owned()), ..Stored::default() },
    };
    file.save(&stored)?;
    Ok(file.path().to_owned())
}
