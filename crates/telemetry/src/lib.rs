//! What Outrigger tells about itself: [`metrics`] in Prometheus text under Dapr's metric names (every process
//! has one registry, rendered by its `/metrics`), and the [`api_log`] writer that keeps every Dapr call an App
//! ID makes, per project, for the control API's logs, charts and usage; and [`trace`]: the W3C trace context
//! of every hop of a call, and span export over OTLP.

pub mod api_log;
pub mod metrics;
pub mod trace;

pub use api_log::{ApiLog, ApiLogOptions};
pub use metrics::{metrics, Metrics};
