//! Pub/sub: the CloudEvent envelope daprd's publish API builds.

pub mod cloudevent;
