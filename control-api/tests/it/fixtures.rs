//! Dapr documents as the quickstarts and docs write them.

/// Redis state store of the Dapr quickstarts.
pub const STATESTORE: &str = r#"apiVersion: dapr.io/v1alpha1
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

/// A whole application: App IDs, a broker, a store with a secret, routing, resiliency and an ACL.
pub const APPLICATION: &str = r#"apiVersion: outrigger.io/v1alpha1
kind: AppIdentity
metadata:
  name: checkout
spec:
  appProtocol: http
---
apiVersion: outrigger.io/v1alpha1
kind: AppIdentity
metadata:
  name: order-processor
spec:
  appEndpoint: http://127.0.0.1:6001
  appHealthCheckPath: /healthz
  config: appconfig
---
apiVersion: dapr.io/v1alpha1
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
    secretKeyRef:
      name: redis-secret
      key: password
  - name: consumerID
    value: "{appID}"
scopes:
- checkout
- order-processor
---
apiVersion: dapr.io/v1alpha1
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
  - name: keyPrefix
    value: name
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: order-routing
spec:
  pubsubname: orderpubsub
  topic: orders
  routes:
    rules:
    - match: event.type == "order.created"
      path: /orders/created
    - match: event.data.priority > 5 && has(event.data.express)
      path: /orders/express
    default: /orders
  deadLetterTopic: poisonorders
scopes:
- order-processor
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
spec:
  policies:
    timeouts:
      general: 5s
      important: 60s
    retries:
      pubsubRetry:
        policy: constant
        duration: 5s
        maxRetries: 10
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 30s
        trip: consecutiveFailures >= 5
  targets:
    apps:
      order-processor:
        timeout: general
        retry: retryForever
        circuitBreaker: simpleCB
    components:
      statestore:
        outbound:
          timeout: general
          retry: retryForever
          circuitBreaker: simpleCB
      orderpubsub:
        inbound:
          timeout: general
          retry: pubsubRetry
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  tracing:
    samplingRate: "1"
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: checkout
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /orders/*
        httpVerb: ["POST", "GET"]
        action: allow
      - name: /admin/**
        httpVerb: ["*"]
        action: deny
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: payments
spec:
  baseUrl: https://payments.example.com
  headers:
  - name: Accept-Language
    value: en-US
"#;
