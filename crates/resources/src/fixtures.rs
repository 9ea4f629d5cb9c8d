//! Documents as Dapr's quickstarts and reference docs write them, and a registry of the types they use,
//! shared by the tests.

use std::sync::LazyLock;

use crate::{
    optional, required, required_file, required_secret, secret, BuildingBlock, ComponentType, MetadataField, Registry,
    V1,
};

/// A component type that reads `fields`; the real declarations live beside the worker's backends.
const fn declared(
    name: &'static str,
    building_block: BuildingBlock,
    managed_component: Option<&'static str>,
    field_groups: &'static [&'static [MetadataField]],
) -> ComponentType {
    ComponentType { name, building_block, versions: V1, managed_component, field_groups }
}

const REDIS: &[MetadataField] = &[required("redisHost"), secret("redisPassword"), optional("redisDB")];

static TYPES: [ComponentType; 8] = [
    declared("pubsub.outrigger", BuildingBlock::PubSub, Some("pubsub"), &[]),
    declared("pubsub.redis", BuildingBlock::PubSub, None, &[REDIS]),
    declared("secretstores.local.file", BuildingBlock::SecretStores, None, &[&[required_file("secretsFile")]]),
    declared("state.in-memory", BuildingBlock::State, None, &[]),
    declared("state.outrigger", BuildingBlock::State, Some("kvstore"), &[]),
    declared("state.postgresql", BuildingBlock::State, None, &[&[required_secret("connectionString")]]),
    declared("state.redis", BuildingBlock::State, None, &[REDIS]),
    declared("state.sqlite", BuildingBlock::State, None, &[&[required_file("connectionString")]]),
];

/// The types the tests' documents use, declared with the fields the tests look at.
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::new(&TYPES));
    &REGISTRY
}

/// The state store from Dapr's quickstarts, with the empty password they ship.
pub(crate) const REDIS_STATESTORE: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: redisPassword
    value: ""
  - name: actorStateStore
    value: "true"
"#;

/// The pub/sub component from the pub/sub quickstart.
pub(crate) const REDIS_PUBSUB: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orderpubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: redisPassword
    value: ""
"#;

/// A declarative subscription with routing rules and a default route.
pub(crate) const SUBSCRIPTION_V2: &str = r#"apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: myevent-subscription
spec:
  pubsubname: orderpubsub
  topic: inventory
  routes:
    rules:
      - match: event.type == "widget"
        path: /widgets
      - match: event.type == "gadget"
        path: /gadgets
    default: /products
scopes:
  - app1
  - app2
"#;

/// The older subscription form with a single `route`.
pub(crate) const SUBSCRIPTION_V1: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: order-pub-sub
spec:
  topic: orders
  route: /checkout
  pubsubname: orderpubsub
scopes:
- orderprocessing
- checkout
"#;

/// Timeouts, retries and circuit breakers applied to apps, actors and components.
pub(crate) const RESILIENCY: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
scopes:
  - checkout
spec:
  policies:
    timeouts:
      general: 5s
      important: 60s
      largeResponse: 10s
    retries:
      pubsubRetry:
        policy: constant
        duration: 5s
        maxRetries: 10
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
      important:
        policy: constant
        duration: 5s
        maxRetries: 30
        matching:
          httpStatusCodes: 429,500-599
          gRPCStatusCodes: 1-4,8-11,13,14
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 30s
        trip: consecutiveFailures >= 5
      pubsubCB:
        maxRequests: 1
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures > 8
  targets:
    apps:
      appB:
        timeout: general
        retry: important
        circuitBreaker: simpleCB
    actors:
      myActorType:
        timeout: general
        retry: important
        circuitBreaker: simpleCB
        circuitBreakerScope: both
        circuitBreakerCacheSize: 5000
    components:
      statestore:
        outbound:
          timeout: general
          retry: retryForever
          circuitBreaker: simpleCB
      orderpubsub:
        outbound:
          retry: pubsubRetry
          circuitBreaker: pubsubCB
        inbound:
          timeout: 2s
          retry: important
          circuitBreaker: pubsubCB
"#;

/// Service invocation access control.
pub(crate) const ACCESS_CONTROL: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  accessControl:
    defaultAction: deny
    trustDomain: "public"
    policies:
    - appId: app1
      defaultAction: allow
      trustDomain: 'public'
      namespace: "default"
      operations:
      - name: /op1
        httpVerb: ['POST', 'GET']
        action: deny
      - name: /op2/*
        httpVerb: ["*"]
        action: allow
  tracing:
    samplingRate: "1"
"#;

/// An external HTTP API with an inline bearer token and a header from a secret.
pub(crate) const HTTP_ENDPOINT: &str = r#"apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: external-api
spec:
  baseUrl: https://api.example.com
  headers:
  - name: "Authorization"
    value: "Bearer my-token"
  - name: "X-Request-Source"
    value: "outrigger"
  - name: "X-Api-Key"
    secretKeyRef:
      name: api-secrets
      key: apiKey
auth:
  secretStore: my-secretstore
"#;

/// An App ID as apply takes it.
pub(crate) const APP_IDENTITY: &str = r#"apiVersion: outrigger.io/v1alpha1
kind: AppIdentity
metadata:
  name: checkout
spec:
  appEndpoint: http://checkout.internal:8080
  appProtocol: http
  appHealthCheckPath: /healthz
  appToken: s3cr3t-app-token
  config: appconfig
"#;

/// Every fixture, in the order a project export would list them.
pub(crate) const ALL: [&str; 9] = [
    REDIS_STATESTORE,
    REDIS_PUBSUB,
    SUBSCRIPTION_V2,
    SUBSCRIPTION_V1,
    RESILIENCY,
    ACCESS_CONTROL,
    HTTP_ENDPOINT,
    APP_IDENTITY,
    POSTGRES_STATESTORE,
];

/// A state store whose required field is also a secret.
pub(crate) const POSTGRES_STATESTORE: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders-db
  labels:
    team: payments
spec:
  type: state.postgresql
  version: v1
  initTimeout: 30s
  metadata:
  - name: connectionString
    value: "host=db user=dapr password=hunter2 port=5432 database=orders"
  - name: tableName
    value: orders_state
  - name: maxConns
    value: 10
  - name: actorStateStore
    value: true
"#;
