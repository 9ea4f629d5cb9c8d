//! The Helm chart `deploy/helm/outrigger`, checked with real tools from PyPI (deploy/helm/requirements-test.txt,
//! which scripts/test installs into target/deploy-tools): `helm lint --strict`; `helm template` with the default
//! values and with ci/everything-values.yaml (every optional part on); every rendered manifest validated against
//! Kubernetes' OpenAPI schemas (kubernetes-validate) and the ServiceMonitor against prometheus-operator's CRD
//! schema (models generated from it); the objects, how they select each other, the NetworkPolicy, the probes, and
//! every Outrigger container's command and settings checked against the binary (deploy.rs's check); values
//! outside values.schema.json refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_yaml::Value;

use crate::deploy::{check_outrigger_container, OPERATOR_VALUE};
use crate::harness::{self, outrigger, random_token};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RELEASE: &str = "outrigger";
const NAMESPACE: &str = "tenants";
/// The chart's `kubeVersion` floor, and the newest Kubernetes kubernetes-validate has schemas for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];
/// What tenant-dialing pods must never reach, backing services aside.
const PRIVATE_RANGES: [&str; 7] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10"];

fn chart() -> PathBuf {
    Path::new(ROOT).join("deploy/helm/outrigger")
}

fn everything() -> String {
    chart().join("ci/everything-values.yaml").to_str().unwrap().to_owned()
}

/// A program of the venv scripts/test makes (`DEPLOY_TOOLS_DIR` names another). A missing tool fails the test:
/// a chart nobody rendered must not pass.
fn tool(name: &str) -> Command {
    let dir = std::env::var_os("DEPLOY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/deploy-tools"));
    let path = dir.join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test, which installs deploy/helm/requirements-test.txt into target/deploy-tools",
        path.display()
    );
    Command::new(path)
}

/// Runs `command` with `input` on its stdin (written from a thread, so a chatty tool cannot block on its stdout).
fn run(mut command: Command, input: &str) -> Output {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|error| panic!("running {command:?}: {error}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` of the chart with `args` (values files, `--set`): the manifests, or helm's complaint.
fn template(args: &[&str]) -> Result<String, String> {
    let mut command = tool("helm");
    command.args(["template", RELEASE]).arg(chart()).args(["--namespace", NAMESPACE]).args(args);
    let output = run(command, "");
    match output.status.success() {
        true => Ok(text(&output.stdout)),
        false => Err(text(&output.stderr)),
    }
}

fn render(args: &[&str]) -> Vec<Value> {
    let manifests = template(args).unwrap_or_else(|error| panic!("helm template {args:?}: {error}"));
    documents(&manifests)
}

fn documents(manifests: &str) -> Vec<Value> {
    let documents = serde_yaml::Deserializer::from_str(manifests).map(|document| Value::deserialize(document).unwrap());
    documents.filter(|document| !document.is_null()).collect()
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().unwrap()
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().unwrap()
}

fn of_kind<'a>(documents: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    documents.iter().filter(move |document| kind(document) == wanted)
}

/// The Deployments and the Job: everything that runs an Outrigger container.
fn workloads(documents: &[Value]) -> impl Iterator<Item = &Value> {
    documents.iter().filter(|document| matches!(kind(document), "Deployment" | "Job"))
}

fn pod_labels(workload: &Value) -> &Value {
    &workload["spec"]["template"]["metadata"]["labels"]
}

fn containers(workload: &Value) -> &Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"].as_sequence().unwrap()
}

fn strings(sequence: &Value) -> Vec<&str> {
    sequence.as_sequence().into_iter().flatten().map(|item| item.as_str().unwrap()).collect()
}

/// Whether every label of `wanted` (a plain map, as a Service's selector) is in `labels`.
fn has_labels(wanted: &Value, labels: &Value) -> bool {
    wanted.as_mapping().into_iter().flatten().all(|(key, value)| labels.get(key) == Some(value))
}

/// Whether the Kubernetes LabelSelector `selector` selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let expressions = selector["matchExpressions"].as_sequence().into_iter().flatten();
    has_labels(&selector["matchLabels"], labels)
        && expressions.into_iter().all(|expression| {
            let value = labels.get(&expression["key"]);
            let listed = value.is_some_and(|value| expression["values"].as_sequence().unwrap().contains(value));
            match expression["operator"].as_str().unwrap() {
                "In" => listed,
                "NotIn" => !listed,
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("no such selector operator: {other}"),
            }
        })
}

#[test]
fn the_chart_lints_strictly_and_carries_the_workspace_version() {
    for values in [vec![], vec!["-f".to_owned(), everything()]] {
        let mut command = tool("helm");
        command.args(["lint", "--strict"]).arg(chart()).args(&values);
        let output = run(command, "");
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "helm lint --strict {values:?}:\n{stdout}{}", text(&output.stderr));
        assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
    }
    let chart_file: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart_file["apiVersion"], "v2");
    assert_eq!(chart_file["appVersion"], env!("CARGO_PKG_VERSION"), "Chart.yaml's appVersion is the binary's");
}

/// kubernetes-validate's report on `manifests` at Kubernetes `version`: its output, or why it refused them.
fn kubernetes_validate(version: &str, manifests: &str) -> Result<String, String> {
    let mut command = tool("kubernetes-validate");
    command.args(["--strict", "--kubernetes-version", version, "-"]);
    let output = run(command, manifests);
    let report = text(&output.stdout) + &text(&output.stderr);
    match output.status.success() {
        true => Ok(report),
        false => Err(report),
    }
}

/// deploy/helm/check-servicemonitors.py's verdict on `monitors` (prometheus-operator's CRD schema).
fn check_service_monitors(monitors: &[&Value]) -> Result<(), String> {
    let manifests: Vec<String> = monitors.iter().map(|monitor| serde_yaml::to_string(monitor).unwrap()).collect();
    let mut command = tool("python");
    command.arg(Path::new(ROOT).join("deploy/helm/check-servicemonitors.py"));
    let output = run(command, &manifests.join("---\n"));
    match output.status.success() {
        true => Ok(()),
        false => Err(text(&output.stdout) + &text(&output.stderr)),
    }
}

/// Everything rendered must validate: the built-in kinds against Kubernetes' schemas at both versions (where the
/// only kind without a schema is the ServiceMonitor), the ServiceMonitor against its CRD's.
#[test]
fn every_rendered_manifest_validates_against_the_kubernetes_schemas() {
    for values in [vec![], vec!["-f", &everything()]] {
        let manifests = template(&values).unwrap();
        let rendered = documents(&manifests);
        let monitors: Vec<&Value> = of_kind(&rendered, "ServiceMonitor").collect();
        for version in KUBERNETES_VERSIONS {
            let report = kubernetes_validate(version, &manifests)
                .unwrap_or_else(|report| panic!("{values:?} at Kubernetes {version}:\n{report}"));
            assert_eq!(report.matches(" passed for resource ").count(), rendered.len() - monitors.len(), "{report}");
            for line in report.lines().filter(|line| !line.starts_with("INFO ")) {
                let no_schema =
                    "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1";
                assert!(line.contains(no_schema), "{values:?} at Kubernetes {version}: {line}");
            }
        }
        check_service_monitors(&monitors).unwrap_or_else(|report| panic!("{values:?}: {report}"));
    }
}

/// The validators are strict: what an API server would refuse, they refuse.
#[test]
fn the_validators_refuse_what_kubernetes_would_refuse() {
    let rendered = render(&["-f", &everything()]);
    let deployment = of_kind(&rendered, "Deployment").next().unwrap();
    // One fault at a time: the validator reports the first it finds in an object.
    let mut wrong_type = deployment.clone();
    wrong_type["spec"]["replicas"] = "many".into();
    let mut unknown_field = deployment.clone();
    unknown_field["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = true.into();
    for (faulty, complaint) in [(wrong_type, "'many' is not of type 'integer'"), (unknown_field, "'readOnlyRootFS'")] {
        for version in KUBERNETES_VERSIONS {
            let manifest = serde_yaml::to_string(&faulty).unwrap();
            let report = kubernetes_validate(version, &manifest).expect_err(complaint);
            assert!(report.contains(complaint), "{report}");
        }
    }

    let monitor = of_kind(&rendered, "ServiceMonitor").next().unwrap();
    let mut wrong_value = monitor.clone();
    wrong_value["spec"]["endpoints"][0]["interval"] = "half a minute".into();
    let report = check_service_monitors(&[&wrong_value]).unwrap_err();
    assert!(report.contains("spec.endpoints.0.interval"), "{report}");
    let mut unknown_field = monitor.clone();
    unknown_field["spec"]["endpoints"][0]["scrapeEvery"] = "30s".into();
    let report = check_service_monitors(&[&unknown_field]).unwrap_err();
    assert!(report.contains("unknown field outrigger.spec.endpoints[0].scrapeEvery"), "{report}");
}

/// `Kind/name` of every object, sorted.
fn inventory(documents: &[Value]) -> Vec<String> {
    let mut found: Vec<String> =
        documents.iter().map(|document| format!("{}/{}", kind(document), name(document))).collect();
    found.sort();
    found
}

#[test]
fn the_rendered_set_is_exactly_the_expected_objects() {
    let always = "Deployment/outrigger-control-api Deployment/outrigger-gateway Deployment/outrigger-worker-default \
        Job/outrigger-migrate NetworkPolicy/outrigger-tenant-egress PodDisruptionBudget/outrigger-control-api \
        PodDisruptionBudget/outrigger-gateway PodDisruptionBudget/outrigger-worker-default \
        Service/outrigger-control-api Service/outrigger-gateway Service/outrigger-worker-metrics";
    let expected = |more: &str| {
        let mut expected: Vec<String> =
            always.split_whitespace().chain(more.split_whitespace()).map(Into::into).collect();
        expected.sort();
        expected
    };
    let defaults = render(&[]);
    // The chart makes the Secret unless an existing one is named.
    assert_eq!(inventory(&defaults), expected("Secret/outrigger-secrets"));
    let full = render(&["-f", &everything()]);
    let more = "Deployment/outrigger-worker-big-tenants PodDisruptionBudget/outrigger-worker-big-tenants \
        HorizontalPodAutoscaler/outrigger-gateway HorizontalPodAutoscaler/outrigger-worker-big-tenants \
        HorizontalPodAutoscaler/outrigger-worker-default ServiceMonitor/outrigger";
    assert_eq!(inventory(&full), expected(more));

    // The migration runs before the release's pods start or change, after the Secret it reads.
    let hook = |document: &Value, key: &str| document["metadata"]["annotations"][key].as_str().unwrap().to_owned();
    let job = of_kind(&defaults, "Job").next().unwrap();
    let secret = of_kind(&defaults, "Secret").next().unwrap();
    assert_eq!(strings(&job["spec"]["template"]["spec"]["containers"][0]["args"]), ["migrate"]);
    assert_eq!(hook(job, "helm.sh/hook"), "pre-install,pre-upgrade");
    assert_eq!(hook(secret, "helm.sh/hook"), "pre-install,pre-upgrade");
    let weight = |document: &Value| hook(document, "helm.sh/hook-weight").parse::<i32>().unwrap();
    assert!(weight(secret) < weight(job));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

/// Services, budgets, autoscalers and the ServiceMonitor reach the pods they are meant for; the credentials come
/// from the right Secret, the operator token to the control API only; every pod runs non-root and read-only.
#[test]
fn the_rendered_objects_select_their_pods_and_run_them_locked_down() {
    for (values, secret) in [(vec![], "outrigger-secrets"), (vec!["-f", &everything()], "outrigger-credentials")] {
        let rendered = render(&values);
        let deployments: Vec<&Value> = of_kind(&rendered, "Deployment").collect();
        for deployment in &deployments {
            assert!(selects(&deployment["spec"]["selector"], pod_labels(deployment)), "{}", name(deployment));
            let others = deployments.iter().filter(|other| other != &deployment);
            assert!(others.into_iter().all(|other| !selects(&deployment["spec"]["selector"], pod_labels(other))));
        }
        let port_names = |workload: &Value| -> BTreeSet<String> {
            let ports = containers(workload).iter().flat_map(|container| container["ports"].as_sequence().unwrap());
            ports.map(|port| port["name"].as_str().unwrap().to_owned()).collect()
        };
        for service in of_kind(&rendered, "Service") {
            let pods: Vec<&&Value> =
                deployments.iter().filter(|pod| has_labels(&service["spec"]["selector"], pod_labels(pod))).collect();
            assert!(!pods.is_empty(), "Service {} selects no pods", name(service));
            for port in service["spec"]["ports"].as_sequence().unwrap() {
                let target = port["targetPort"].as_str().unwrap();
                assert!(pods.iter().all(|pod| port_names(pod).contains(target)), "{}: {target}", name(service));
            }
        }
        for budget in of_kind(&rendered, "PodDisruptionBudget") {
            let selected = deployments.iter().filter(|pod| selects(&budget["spec"]["selector"], pod_labels(pod)));
            assert_eq!(selected.map(|pod| name(pod)).collect::<Vec<_>>(), [name(budget)]);
        }
        for autoscaler in of_kind(&rendered, "HorizontalPodAutoscaler") {
            let target = &autoscaler["spec"]["scaleTargetRef"];
            assert_eq!(target["kind"], "Deployment");
            let deployment = deployments.iter().find(|pod| target["name"] == name(pod)).expect("the scaled Deployment");
            // A replica count in the Deployment would fight the autoscaler on every upgrade.
            assert!(deployment["spec"].get("replicas").is_none(), "{}", name(deployment));
        }
        for monitor in of_kind(&rendered, "ServiceMonitor") {
            let selector = &monitor["spec"]["selector"];
            let mut scraped: Vec<&str> = of_kind(&rendered, "Service")
                .filter(|service| selects(selector, &service["metadata"]["labels"]))
                .map(name)
                .collect();
            scraped.sort();
            assert_eq!(scraped, ["outrigger-control-api", "outrigger-gateway", "outrigger-worker-metrics"]);
            assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
            assert_eq!(strings(&monitor["spec"]["namespaceSelector"]["matchNames"]), [NAMESPACE]);
        }
        for workload in workloads(&rendered) {
            let pod = &workload["spec"]["template"]["spec"];
            assert_eq!(pod["automountServiceAccountToken"], false);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(pod["securityContext"]["runAsUser"], 10001);
            for container in containers(workload) {
                let context = &container["securityContext"];
                assert_eq!(context["readOnlyRootFilesystem"], true);
                assert_eq!(context["allowPrivilegeEscalation"], false);
                assert_eq!(strings(&context["capabilities"]["drop"]), ["ALL"]);
                let role = strings(&container["args"])[0].to_owned();
                for variable in container["env"].as_sequence().unwrap() {
                    let from = &variable["valueFrom"]["secretKeyRef"];
                    match variable["name"].as_str().unwrap() {
                        "OUTRIGGER_DATABASE_URL" => assert_eq!(from["name"], secret),
                        "OUTRIGGER_ADMIN_TOKEN" => {
                            assert_eq!(from["name"], secret);
                            assert_eq!(role, "control-api", "only the control API gets the operator token");
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A container's command and its environment, a value the operator could supply standing in for each one read
/// from a Secret (the binary checks a URL's scheme when it loads its settings).
fn command_and_env(container: &Value) -> (Vec<&str>, Vec<(String, String)>) {
    let env = container["env"].as_sequence().unwrap().iter().map(|variable| {
        let name = variable["name"].as_str().unwrap();
        let stand_in = if name.ends_with("_URL") { "redis://from-a-secret:6379" } else { OPERATOR_VALUE };
        (name.to_owned(), variable["value"].as_str().unwrap_or(stand_in).to_owned())
    });
    (strings(&container["args"]), env.collect())
}

#[test]
fn every_outrigger_container_runs_a_role_with_settings_the_binary_accepts() {
    let everything = everything();
    for (values, pools) in
        [(vec![], vec!["default"]), (vec!["-f", everything.as_str()], vec!["big-tenants", "default"])]
    {
        let rendered = render(&values);
        let mut roles = Vec::new();
        for workload in workloads(&rendered) {
            for container in containers(workload) {
                let (command, env) = command_and_env(container);
                let names: BTreeSet<&String> = env.iter().map(|(name, _)| name).collect();
                assert_eq!(names.len(), env.len(), "{}: a variable set twice", name(workload));
                let what = format!("{} {} in {values:?}", kind(workload), name(workload));
                check_outrigger_container(&what, &command, &env).unwrap_or_else(|error| panic!("{error}"));
                roles.push(command.join(" "));
            }
        }
        roles.sort();
        let mut expected = vec!["control-api".to_owned(), "gateway".to_owned(), "migrate".to_owned()];
        expected.extend(pools.iter().map(|pool| format!("worker --pool {pool}")));
        assert_eq!(roles, expected);
    }
    // The check is the binary's: a setting it does not have, passed where the schema cannot see, is caught.
    let rendered =
        render(&["--set", "extraEnv[0].name=OUTRIGGER_TOKEN_CACHE_SECOND", "--set-string", "extraEnv[0].value=2"]);
    let gateway = of_kind(&rendered, "Deployment").find(|deployment| name(deployment) == "outrigger-gateway").unwrap();
    let (command, env) = command_and_env(&containers(gateway)[0]);
    let error = check_outrigger_container("gateway", &command, &env).unwrap_err();
    assert!(error.contains("TOKEN_CACHE_SECOND"), "{error}");
}

/// Whether `ip` is in `cidr`.
fn in_range(ip: IpAddr, cidr: &str) -> bool {
    let (network, bits) = cidr.split_once('/').unwrap();
    let bits: u32 = bits.parse().unwrap();
    match (ip, network.parse::<IpAddr>().unwrap()) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => bits == 0 || (u32::from(ip) ^ u32::from(network)) >> (32 - bits) == 0,
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            bits == 0 || (u128::from(ip) ^ u128::from(network)) >> (128 - bits) == 0
        }
        _ => false,
    }
}

/// Whether the egress rules of `policy` let a TCP connection to `ip`:`port` out (an address that is no selected
/// pod: only `ipBlock` peers can match it).
fn lets_out(policy: &Value, ip: &str, port: u16) -> bool {
    let ip: IpAddr = ip.parse().unwrap();
    policy["spec"]["egress"].as_sequence().unwrap().iter().any(|rule| {
        let ports = rule["ports"].as_sequence();
        let port_allowed = ports
            .is_none_or(|ports| ports.iter().any(|allowed| allowed["port"] == port && allowed["protocol"] != "UDP"));
        let peers = rule["to"].as_sequence().unwrap();
        port_allowed
            && peers.iter().any(|peer| {
                let block = &peer["ipBlock"];
                block.get("cidr").is_some_and(|cidr| in_range(ip, cidr.as_str().unwrap()))
                    && strings(&block["except"]).iter().all(|except| !in_range(ip, except))
            })
    })
}

/// The egress rule whose peers include pods labelled with `selector`.
fn rule_to<'a>(rules: &'a [Value], selector: &str) -> &'a Value {
    let matches = |rule: &&Value| {
        let peers = rule["to"].as_sequence().unwrap();
        peers.iter().any(|peer| {
            let labels = peer["podSelector"]["matchLabels"].as_mapping();
            labels.is_some_and(|labels| labels.values().any(|value| value == selector))
        })
    };
    rules.iter().find(matches).unwrap_or_else(|| panic!("no rule to {selector}"))
}

#[test]
fn the_network_policy_keeps_tenant_egress_off_private_ranges() {
    let rendered = render(&[]);
    let policy = of_kind(&rendered, "NetworkPolicy").next().expect("a NetworkPolicy with the default values");
    assert_eq!(strings(&policy["spec"]["policyTypes"]), ["Egress"]);
    // It holds the pods that dial tenants' addresses: gateways and every pool's workers, not the control API.
    let mut held: Vec<&str> = workloads(&rendered)
        .filter(|workload| selects(&policy["spec"]["podSelector"], pod_labels(workload)))
        .map(name)
        .collect();
    held.sort();
    assert_eq!(held, ["outrigger-gateway", "outrigger-worker-default"]);

    let rules = policy["spec"]["egress"].as_sequence().unwrap();
    for rule in rules {
        // A rule without peers would open every address.
        assert!(!rule["to"].as_sequence().unwrap().is_empty());
        let ip_blocks = rule["to"].as_sequence().unwrap().iter().filter_map(|peer| peer.get("ipBlock"));
        for block in ip_blocks {
            // Only the internet rule has a range with exceptions, and it keeps every private range out.
            if matches!(block["cidr"].as_str(), Some("0.0.0.0/0" | "::/0")) {
                let except = strings(&block["except"]);
                let family = PRIVATE_RANGES.iter().filter(|range| range.contains(':') == (block["cidr"] == "::/0"));
                assert!(family.into_iter().all(|range| except.contains(range)), "{except:?}");
            }
        }
    }
    for private in ["10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1"] {
        for port in [53, 80, 443, 4222, 5432, 6379] {
            assert!(!lets_out(policy, private, port), "{private}:{port} is let out");
        }
    }
    assert!(lets_out(policy, "8.8.8.8", 443) && lets_out(policy, "2606:4700::1111", 443));
    let ports = |rule: &Value| -> Vec<String> {
        let ports = rule["ports"].as_sequence().unwrap().iter();
        ports.map(|port| format!("{}/{}", port["port"].as_u64().unwrap(), port["protocol"].as_str().unwrap())).collect()
    };
    let dns = rule_to(rules, "kube-dns");
    assert_eq!(ports(dns), ["53/UDP", "53/TCP"]);
    assert_eq!(dns["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "kube-system");
    assert_eq!(ports(rule_to(rules, "postgresql")), ["5432/TCP"]);
    assert_eq!(ports(rule_to(rules, "redis")), ["6379/TCP"]);
    assert_eq!(ports(rule_to(rules, "nats")), ["4222/TCP"]);

    // Backing services given as addresses are let out on their ports only.
    let rendered = render(&["-f", &everything()]);
    let policy = of_kind(&rendered, "NetworkPolicy").next().unwrap();
    assert!(lets_out(policy, "10.20.0.5", 5432));
    assert!(!lets_out(policy, "10.20.0.5", 6379) && !lets_out(policy, "10.20.0.6", 5432));
    let held = workloads(&rendered).filter(|workload| selects(&policy["spec"]["podSelector"], pod_labels(workload)));
    assert_eq!(held.count(), 3, "gateways and both pools");

    // Without IPv6 there is no IPv6 egress at all; and the policy can be left out.
    let rendered = render(&["--set", "networkPolicy.ipv6.enabled=false"]);
    assert!(!lets_out(of_kind(&rendered, "NetworkPolicy").next().unwrap(), "2606:4700::1111", 443));
    assert_eq!(of_kind(&render(&["--set", "networkPolicy.enabled=false"]), "NetworkPolicy").count(), 0);
}

#[test]
fn values_outside_the_schema_are_refused() {
    for (set, field) in [
        ("gateway.replicas=many", "gateway.replicas: Invalid type"),
        ("config.logFormat=yaml", "config.logFormat must be one of the following"),
        ("gateway.replicaz=2", "Additional property replicaz is not allowed"),
        ("workers.pools.Big.replicas=1", "workers.pools: Property name of \"Big\" does not match"),
        ("config.settings.OUTRIGGER_DATABASE_URL=x", "config.settings: Property name of \"OUTRIGGER_DATABASE_URL\""),
        ("podSecurityContext.runAsNonRoot=false", "podSecurityContext.runAsNonRoot does not match: true"),
        ("secrets.adminToken=too-short", "secrets.adminToken"),
        ("networkPolicy.deniedCidrs={10.0.0.0}", "networkPolicy.deniedCidrs.0: Does not match pattern"),
    ] {
        let error = template(&["--set", set]).expect_err(set);
        assert!(error.contains("values don't meet the specifications of the schema"), "{set}: {error}");
        assert!(error.contains(field), "{set}: {error}");
    }
    // The same fields with values the schema allows render.
    let rendered = render(&["--set", "gateway.replicas=3", "--set", "config.logFormat=text"]);
    let gateway = of_kind(&rendered, "Deployment").find(|deployment| name(deployment) == "outrigger-gateway").unwrap();
    assert_eq!(gateway["spec"]["replicas"], 3);
}

/// Every probe asks a path the binary answers, on the listener behind the port it names; the all-in-one serves
/// the routers of every role (the Dapr HTTP API, the control API, the metrics listener).
#[test]
fn the_probes_ask_what_the_binary_answers() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = [("OUTRIGGER_METRICS_ADDR", "127.0.0.1:0")];
    let server = harness::Server::start_role(&[], &env, data_dir.path(), Some(&random_token()));
    let addresses = server.addresses;
    let rendered = render(&[]);
    for deployment in of_kind(&rendered, "Deployment") {
        let container = &containers(deployment)[0];
        let ports: BTreeMap<&str, u64> = container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|port| (port["name"].as_str().unwrap(), port["containerPort"].as_u64().unwrap()))
            .collect();
        let (_, env) = command_and_env(container);
        let metrics_addr = env.iter().find(|(name, _)| name == "OUTRIGGER_METRICS_ADDR").unwrap();
        assert_eq!(metrics_addr.1, format!("0.0.0.0:{}", ports["metrics"]));
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let get = &container[probe]["httpGet"];
            let (path, port) = (get["path"].as_str().unwrap(), ports[get["port"].as_str().unwrap()]);
            // The binary's default listen ports (the chart leaves them), and the metrics port it sets.
            let address = match port {
                3500 => addresses.dapr_http,
                8080 => addresses.control_api,
                _ if port == ports["metrics"] => addresses.metrics,
                other => panic!("{} probes port {other}, which no listener has", name(deployment)),
            };
            let url = format!("http://{}{path}", address.unwrap());
            let (status, body) = harness::dapr_http(reqwest::Method::GET, &url, "", None);
            // Kubernetes counts 200-399 as healthy.
            assert!((200..400).contains(&status.as_u16()), "{} {probe} {url}: {status} {body}", name(deployment));
        }
    }
}

/// values.yaml documents every field with a comment, values.schema.json gives every field a type, and the
/// schema's `config.settings` are exactly the binary's settings the chart does not set itself.
#[test]
fn every_value_is_documented_and_typed() {
    let values_file = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let mut previous = "";
    for line in values_file.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') && !line.starts_with('-') && line.contains(':') {
            assert!(previous.starts_with('#'), "values.yaml: no comment right above `{line}`");
        }
        previous = line;
    }

    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap()).unwrap();
    let values: serde_json::Value = serde_yaml::from_str(&values_file).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    fn typed(schema: &serde_json::Value, node: &serde_json::Value, value: &serde_json::Value, path: &str) {
        let node = match node["$ref"].as_str() {
            Some(reference) => &schema["definitions"][reference.trim_start_matches("#/definitions/")],
            None => node,
        };
        let typing = ["type", "enum", "const", "anyOf", "oneOf"];
        assert!(typing.iter().any(|keyword| node.get(keyword).is_some()), "{path} has no type in the schema");
        for (key, value) in value.as_object().into_iter().flatten() {
            let child = node["properties"].get(key).or_else(|| node.get("additionalProperties"));
            let child = child.filter(|child| child.is_object()).unwrap_or_else(|| panic!("{path}.{key}: no schema"));
            typed(schema, child, value, &format!("{path}.{key}"));
        }
    }
    typed(&schema, &schema, &values, "values");

    // The binary names its settings when refusing one it does not have.
    let refused = outrigger(["migrate"]).env("OUTRIGGER_NO_SUCH_SETTING", "1").output().unwrap();
    let refusal = text(&refused.stderr);
    let listed = refusal.split_once("one of ").unwrap_or_else(|| panic!("{refusal}")).1.split(" for key").next();
    let binary: BTreeSet<String> = listed
        .unwrap()
        .split('`')
        .filter(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(|word| format!("OUTRIGGER_{}", word.to_uppercase()))
        .collect();
    let open: BTreeSet<String> = schema["properties"]["config"]["properties"]["settings"]["propertyNames"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    // Set by the chart from its own values (or the binary's defaults the Services, plain-HTTP probes and the
    // metrics listener every pod serves rely on).
    let set_by_chart = "DATABASE_URL ADMIN_TOKEN DATA_DIR METRICS_ADDR LOG_FORMAT LOG NATS_URL MANAGED_KVSTORE_URL \
        MANAGED_PUBSUB_URL PUBLIC_HTTP_ENDPOINT PUBLIC_GRPC_ENDPOINT";
    let left_at_default = "HTTP_ADDR GRPC_ADDR CONTROL_API_ADDR TLS_CERT_FILE TLS_KEY_FILE METRICS";
    let mut expected: BTreeSet<String> = binary.clone();
    for setting in set_by_chart.split_whitespace().chain(left_at_default.split_whitespace()) {
        assert!(expected.remove(&format!("OUTRIGGER_{setting}")), "the binary has no {setting}: {binary:?}");
    }
    let (missing, extra): (Vec<_>, Vec<_>) =
        (expected.difference(&open).collect(), open.difference(&expected).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "values.schema.json's config.settings: add the binary's {missing:?}, remove {extra:?} (the binary has no such)"
    );
}
