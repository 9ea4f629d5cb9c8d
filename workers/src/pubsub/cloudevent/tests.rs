//! Tests of `cloudevent`.

use serde_json::json;

use super::*;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE";

/// A publish time with a fraction of a second, which `time` and `expiration` drop.
fn now() -> DateTime<Utc> {
    "2024-05-06T07:08:09.750Z".parse().unwrap()
}

fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

fn publication<'a>(
    data: &'a [u8],
    content_type: Option<&'a str>,
    metadata: &'a BTreeMap<String, String>,
) -> Publication<'a> {
    Publication {
        pubsub: "orderpubsub",
        topic: "orders",
        publisher_app_id: "checkout",
        data,
        content_type,
        metadata,
        traceparent: Some(TRACEPARENT),
        tracestate: Some(TRACESTATE),
    }
}

/// The envelope and the message it travels in.
fn build(publication: &Publication<'_>) -> (Map<String, Value>, Message) {
    let message = envelope(publication, now()).unwrap();
    assert_eq!(message.content_type, Some(CLOUDEVENT_CONTENT_TYPE));
    (parse_event(&message.payload).unwrap(), message)
}

fn assert_uuid_v4(value: &Value) {
    let id = uuid::Uuid::parse_str(value.as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4, "{id}");
}

#[test]
fn a_new_envelope_has_every_daprd_field() {
    let none = BTreeMap::new();
    let (mut event, message) =
        build(&publication(br#"{"orderId": 1}"#, Some("application/json; charset=utf-8"), &none));
    assert_uuid_v4(&event.remove("id").unwrap());
    assert_eq!(
        Value::Object(event),
        json!({
            "specversion": "1.0",
            "datacontenttype": "application/json; charset=utf-8",
            "source": "checkout",
            "type": "com.dapr.event.sent",
            "topic": "orders",
            "pubsubname": "orderpubsub",
            "traceid": TRACEPARENT,
            "traceparent": TRACEPARENT,
            "tracestate": TRACESTATE,
            "time": "2024-05-06T07:08:09Z",
            "data": {"orderId": 1}
        })
    );
    assert_eq!(message.expiration, None);
}

#[test]
fn each_publication_gets_its_own_id() {
    let none = BTreeMap::new();
    let (first, _) = build(&publication(b"a", None, &none));
    let (second, _) = build(&publication(b"a", None, &none));
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn trace_fields_are_present_even_without_a_trace() {
    let none = BTreeMap::new();
    let untraced = Publication { traceparent: None, tracestate: None, ..publication(b"x", None, &none) };
    let (event, _) = build(&untraced);
    assert_eq!((&event["traceid"], &event["traceparent"], &event["tracestate"]), (&json!(""), &json!(""), &json!("")));
}

/// daprd does not sniff the body: without a content type, even JSON is text.
#[test]
fn data_follows_the_content_type() {
    /// Content type, body, then the expected `datacontenttype`, data field and its value.
    type Case = (Option<&'static str>, &'static [u8], &'static str, &'static str, Value);
    let cases: [Case; 20] = [
        (None, br#"{"a": 1}"#, "text/plain", "data", json!(r#"{"a": 1}"#)),
        (Some(""), b"hello", "text/plain", "data", json!("hello")),
        (Some("application/json"), br#"{"price": 150}"#, "application/json", "data", json!({"price": 150})),
        (
            Some("Application/JSON;charset=utf-8"),
            b"[1, 2.5]",
            "Application/JSON;charset=utf-8",
            "data",
            json!([1, 2.5]),
        ),
        (Some("application/json"), br#""text""#, "application/json", "data", json!("text")),
        (Some("application/json"), br#"{"a": 1} {"b": 2}"#, "application/json", "data", json!({"a": 1})),
        (Some("application/json"), b"not json", "application/json", "data", json!("not json")),
        (Some("application/json"), b"", "application/json", "data", json!("")),
        (Some("application/json ;charset=utf-8"), b"{}", "application/json ;charset=utf-8", "data", json!("{}")),
        (Some("application/merge-patch+json"), b"{}", "application/merge-patch+json", "data", json!("{}")),
        (Some("text/plain"), "héllo ✓".as_bytes(), "text/plain", "data", json!("héllo ✓")),
        (Some("application/xml"), b"<a/>", "application/xml", "data", json!("<a/>")),
        (Some("application/octet-stream"), b"\x00\x01", "application/octet-stream", "data_base64", json!("AAE=")),
        (Some("application/octet-stream"), b"text", "application/octet-stream", "data_base64", json!("dGV4dA==")),
        (Some("APPLICATION/OCTET-STREAM; x=y"), b"t", "APPLICATION/OCTET-STREAM; x=y", "data_base64", json!("dA==")),
        (Some("application/x-protobuf"), b"\x08\x01", "application/x-protobuf", "data_base64", json!("CAE=")),
        (
            Some("application/cloudevents+protobuf"),
            b"ab",
            "application/cloudevents+protobuf",
            "data_base64",
            json!("YWI="),
        ),
        (Some("text/plain"), b"\xff\xfe", "text/plain", "data_base64", json!("//4=")),
        (None, b"ok\xc3", "text/plain", "data_base64", json!("b2vD")),
        (Some("application/json"), b"\"\xff\"", "application/json", "data_base64", json!("Iv8i")),
    ];
    let none = BTreeMap::new();
    for (content_type, body, datacontenttype, field, expected) in cases {
        let (event, _) = build(&publication(body, content_type, &none));
        let context = format!("{content_type:?} {}", String::from_utf8_lossy(body));
        assert_eq!(event["datacontenttype"], json!(datacontenttype), "{context}");
        assert_eq!(event[field], expected, "{context}");
        let other = if field == "data" { "data_base64" } else { "data" };
        assert!(!event.contains_key(other), "{context}");
    }
}

#[test]
fn cloudevent_metadata_overrides_fields() {
    let cases = [
        (
            vec![
                ("cloudevent.id", "override-id"),
                ("cloudevent.source", "payments"),
                ("cloudevent.type", "order.paid"),
                ("cloudevent.subject", "order-7"),
                ("cloudevent.traceid", "legacy-trace"),
                ("cloudevent.traceparent", "00-override-01"),
                ("cloudevent.tracestate", "x=1"),
            ],
            json!({"id": "override-id", "source": "payments", "type": "order.paid", "subject": "order-7",
                "traceid": "00-override-01", "traceparent": "00-override-01", "tracestate": "x=1"}),
        ),
        // traceid alone sets both trace fields; an empty traceparent does not override it.
        (
            vec![("cloudevent.traceid", "legacy-trace"), ("cloudevent.traceparent", "")],
            json!({"traceid": "legacy-trace", "traceparent": "legacy-trace", "tracestate": TRACESTATE}),
        ),
        // Keys match in any case.
        (
            vec![("CloudEvent.Type", "order.shipped"), ("CLOUDEVENT.SOURCE", "shipping")],
            json!({"type": "order.shipped", "source": "shipping"}),
        ),
        // Present but empty: daprd's defaults apply, and trace fields become empty.
        (
            vec![
                ("cloudevent.source", ""),
                ("cloudevent.type", ""),
                ("cloudevent.traceid", ""),
                ("cloudevent.tracestate", ""),
            ],
            json!({"source": "Dapr", "type": "com.dapr.event.sent",
                "traceid": "", "traceparent": "", "tracestate": ""}),
        ),
        // The rest of the envelope cannot be overridden.
        (
            vec![
                ("cloudevent.topic", "other"),
                ("cloudevent.pubsubname", "other"),
                ("cloudevent.datacontenttype", "application/json"),
                ("cloudevent.data", "other"),
                ("cloudevent.time", "2000-01-01T00:00:00Z"),
                ("cloudevent.specversion", "0.3"),
            ],
            json!({"topic": "orders", "pubsubname": "orderpubsub", "datacontenttype": "text/plain", "data": "body",
                "time": "2024-05-06T07:08:09Z", "specversion": "1.0"}),
        ),
    ];
    for (pairs, expected) in cases {
        let metadata = metadata(&pairs);
        let (event, _) = build(&publication(b"body", None, &metadata));
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&event[key], value, "{pairs:?}: {key}");
        }
    }
}

#[test]
fn empty_overrides_fall_back_to_defaults() {
    let metadata = metadata(&[("cloudevent.id", ""), ("cloudevent.subject", "")]);
    let (event, _) = build(&publication(b"body", None, &metadata));
    assert_uuid_v4(&event["id"]);
    assert!(!event.contains_key("subject"));
    let none = BTreeMap::new();
    let anonymous = Publication { publisher_app_id: "", ..publication(b"body", None, &none) };
    assert_eq!(build(&anonymous).0["source"], json!("Dapr"));
}

#[test]
fn a_published_cloudevent_is_kept_and_completed() {
    let body = json!({
        "id": "event-1", "source": "legacy", "type": "order.created", "specversion": "1.0",
        "time": "2023-01-01T00:00:00Z", "subject": "s", "datacontenttype": "text/plain", "data": "world",
        "traceid": "publisher-trace", "myextension": {"nested": true},
        "topic": "wrong", "pubsubname": "wrong"
    });
    let ignored = metadata(&[("cloudevent.type", "ignored"), ("cloudevent.id", "ignored")]);
    let body = body.to_string();
    let (event, _) = build(&publication(body.as_bytes(), Some("application/cloudevents+json"), &ignored));
    assert_eq!(
        Value::Object(event),
        json!({
            "id": "event-1", "source": "legacy", "type": "order.created", "specversion": "1.0",
            "time": "2023-01-01T00:00:00Z", "subject": "s", "datacontenttype": "text/plain", "data": "world",
            "traceid": "publisher-trace", "traceparent": TRACEPARENT, "tracestate": TRACESTATE,
            "myextension": {"nested": true}, "topic": "orders", "pubsubname": "orderpubsub"
        })
    );
}

#[test]
fn a_bare_published_cloudevent_gets_daprd_defaults() {
    let none = BTreeMap::new();
    let body = br#"{"data": {"a": 1}, "source": null, "traceparent": "publisher-parent"}"#;
    let (mut event, _) = build(&publication(body, Some("Application/CloudEvents+JSON; charset=utf-8"), &none));
    assert_uuid_v4(&event.remove("id").unwrap());
    assert_eq!(
        Value::Object(event),
        json!({
            "data": {"a": 1}, "source": "Dapr", "type": "com.dapr.event.sent", "specversion": "1.0",
            "datacontenttype": "application/json", "time": "2024-05-06T07:08:09Z",
            // Without a traceid daprd sets both trace fields, replacing the publisher's traceparent.
            "traceid": TRACEPARENT, "traceparent": TRACEPARENT, "tracestate": TRACESTATE,
            "topic": "orders", "pubsubname": "orderpubsub"
        })
    );
    let binary = br#"{"data_base64": "AAE="}"#;
    let (event, _) = build(&publication(binary, Some(CLOUDEVENT_CONTENT_TYPE), &none));
    assert_eq!(event["datacontenttype"], json!("application/octet-stream"));
}

#[test]
fn a_published_cloudevent_must_be_a_json_object() {
    let none = BTreeMap::new();
    let cases: [(&[u8], &str); 4] =
        [(b"[1]", "an array"), (b"null", "null"), (b"\"event\"", "a string"), (b"{not json", "invalid JSON")];
    for (body, found) in cases {
        let error = envelope(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &none), now()).unwrap_err();
        assert_eq!(error, EnvelopeError::NotACloudEvent(found));
        assert_eq!(error.to_string(), format!("not a CloudEvent: expected a JSON object, found {found}"));
    }
}

#[test]
fn raw_payload_skips_the_envelope() {
    let cases = [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("t", true),
        ("1", true),
        ("false", false),
        ("F", false),
        ("0", false),
        ("", false),
    ];
    for (value, raw) in cases {
        let metadata = metadata(&[("rawPayload", value)]);
        let message = envelope(&publication(b"\x00raw", Some("application/json"), &metadata), now()).unwrap();
        assert_eq!(message.payload == b"\x00raw", raw, "{value}");
        assert_eq!(message.content_type.is_none(), raw, "{value}");
    }
    // The key is exact in daprd, unlike the cloudevent.* and ttl keys.
    let metadata = metadata(&[("rawpayload", "true")]);
    assert!(envelope(&publication(b"x", None, &metadata), now()).unwrap().content_type.is_some());
}

#[test]
fn invalid_raw_payload_is_an_error() {
    for value in ["yes", "TRUE ", "on"] {
        let metadata = metadata(&[("rawPayload", value)]);
        let error = envelope(&publication(b"x", None, &metadata), now()).unwrap_err();
        assert_eq!(error, EnvelopeError::InvalidRawPayload(value.to_owned()));
    }
}

#[test]
fn ttl_sets_the_expiration() {
    let cases = [
        (vec![("ttlInSeconds", "60")], Some("2024-05-06T07:09:09Z")),
        (vec![("TTLINSECONDS", "60")], Some("2024-05-06T07:09:09Z")),
        (vec![("ttlInSeconds", "+5")], Some("2024-05-06T07:08:14Z")),
        (vec![("ttl", "1m30s")], Some("2024-05-06T07:09:39Z")),
        // 09.75 + 1.5 seconds, to the second.
        (vec![("ttl", "1500ms")], Some("2024-05-06T07:08:11Z")),
        // A Go zero duration: the message expires at once, as in daprd.
        (vec![("ttlInSeconds", "0")], Some("2024-05-06T07:08:09Z")),
        // ttl is read before ttlInSeconds.
        (vec![("ttl", "10s"), ("ttlInSeconds", "99")], Some("2024-05-06T07:08:19Z")),
        (vec![("ttlInSeconds", "")], None),
        (vec![], None),
    ];
    for (pairs, expected) in cases {
        let metadata = metadata(&pairs);
        let (event, message) = build(&publication(b"x", None, &metadata));
        let expected_time = expected.map(|text| text.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(event.get("expiration"), expected.map(Value::from).as_ref(), "{pairs:?}");
        assert_eq!(message.expiration, expected_time, "{pairs:?}");
    }
}

#[test]
fn ttl_is_capped_at_gos_longest_duration() {
    let in_seconds = metadata(&[("ttlInSeconds", "99999999999999")]);
    let longest = metadata(&[("ttl", "2562047h47m16.854775807s")]);
    let capped = envelope(&publication(b"x", None, &in_seconds), now()).unwrap().expiration.unwrap();
    assert_eq!(Some(capped), envelope(&publication(b"x", None, &longest), now()).unwrap().expiration);
    assert_eq!(rfc3339(capped), "2316-08-16T06:55:26Z");
}

#[test]
fn a_raw_payload_keeps_its_ttl_on_the_message() {
    let metadata = metadata(&[("rawPayload", "true"), ("ttlInSeconds", "60")]);
    let message = envelope(&publication(b"x", None, &metadata), now()).unwrap();
    assert_eq!(message.expiration, Some("2024-05-06T07:09:09Z".parse().unwrap()));
}

#[test]
fn invalid_ttl_is_an_error() {
    for (key, value) in [
        ("ttlInSeconds", "abc"),
        ("ttlInSeconds", "-5"),
        ("ttlInSeconds", "00"),
        ("ttl", "1.5"),
        ("ttl", "-5s"),
        ("TTL", "1d"),
    ] {
        let metadata = metadata(&[(key, value)]);
        let error = envelope(&publication(b"x", None, &metadata), now()).unwrap_err();
        assert_eq!(error, EnvelopeError::InvalidTtl { key: key.to_owned(), value: value.to_owned() });
        assert!(error.to_string().starts_with(&format!("metadata {key}='{value}' is not a time to live")));
    }
}

#[test]
fn a_published_expiration_is_kept_unless_a_ttl_replaces_it() {
    let body = br#"{"expiration": "2030-01-01T00:00:00Z"}"#;
    let none = BTreeMap::new();
    let (event, message) = build(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &none));
    assert_eq!(event["expiration"], json!("2030-01-01T00:00:00Z"));
    assert_eq!(message.expiration, Some("2030-01-01T00:00:00Z".parse().unwrap()));
    let ttl = metadata(&[("ttlInSeconds", "60")]);
    let (event, message) = build(&publication(body, Some(CLOUDEVENT_CONTENT_TYPE), &ttl));
    assert_eq!(event["expiration"], json!("2024-05-06T07:09:09Z"));
    assert_eq!(message.expiration, Some("2024-05-06T07:09:09Z".parse().unwrap()));
}

#[test]
fn raw_payload_events_are_daprds_synthetic_envelope() {
    let mut event = raw_payload_event(b"\x00\xffraw", "orderpubsub", "orders");
    assert_uuid_v4(&event.remove("id").unwrap());
    assert_eq!(
        Value::Object(event),
        json!({
            "specversion": "1.0", "datacontenttype": "application/octet-stream", "source": "Dapr",
            "type": "com.dapr.event.sent", "topic": "orders", "pubsubname": "orderpubsub", "data_base64": "AP9yYXc="
        })
    );
}

#[test]
fn stored_messages_parse_back_or_say_why_not() {
    let none = BTreeMap::new();
    let message = envelope(&publication(br#"{"a": 1}"#, Some("application/json"), &none), now()).unwrap();
    assert_eq!(parse_event(&message.payload).unwrap()["data"], json!({"a": 1}));
    let cases: [(&[u8], &str); 4] =
        [(b"[]", "an array"), (b"42", "a number"), (b"\x00raw", "invalid JSON"), (br#"{"a": 1} x"#, "invalid JSON")];
    for (payload, found) in cases {
        assert_eq!(parse_event(payload), Err(EnvelopeError::NotACloudEvent(found)));
    }
}

#[test]
fn json_data_is_kept_as_the_publisher_sent_it() {
    let none = BTreeMap::new();
    let data = br#" {"n": 123456789012345678901234567890, "s": "\u00e9"} and what follows"#;
    let message = envelope(&publication(data, Some("application/json"), &none), now()).unwrap();
    let text = std::str::from_utf8(&message.payload).unwrap();
    let kept = r#","data":{"n": 123456789012345678901234567890, "s": "\u00e9"}}"#;
    assert!(text.ends_with(kept), "{text}");
    let event = parse_event(&message.payload).unwrap();
    assert_eq!((event["datacontenttype"].as_str(), event["data"]["s"].as_str()), (Some("application/json"), Some("é")));
}

#[test]
fn a_deliverys_attributes_are_the_whole_events_own() {
    let ttl = metadata(&[("ttlInSeconds", "60")]);
    let message = envelope(&publication(br#"{"a": "x\"y"}"#, Some("application/json"), &ttl), now()).unwrap();
    let (whole, attributes) = (parse_event(&message.payload).unwrap(), parse_delivery_attributes(&message.payload));
    let attributes = attributes.unwrap();
    let names: Vec<&str> = attributes.keys().map(String::as_str).collect();
    assert_eq!(names, ["expiration", "pubsubname", "topic", "traceparent", "tracestate"]);
    for (name, value) in &attributes {
        assert_eq!(Some(value), whole.get(name), "{name}");
    }
    assert_eq!(is_expired(&attributes, now()), is_expired(&whole, now()));
    // Attributes of any JSON type are kept as they are; other members are not read.
    let odd = parse_delivery_attributes(br#"{"topic": 7, "traceparent": null, "data": [1, {"x": 2}]}"#).unwrap();
    assert_eq!(Value::Object(odd), json!({ "topic": 7 }));
    let cases: [&[u8]; 4] = [b"[]", br#" ["t", "p"]"#, b"\x00raw", br#"{"topic": "a"} x"#];
    for payload in cases {
        assert!(parse_delivery_attributes(payload).is_err(), "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn expiry_compares_the_expiration_with_now() {
    let cases = [
        (json!("2024-05-06T07:08:09.750Z"), false),
        (json!("2024-05-06T07:08:09.749Z"), true),
        (json!("2024-05-06T07:08:09Z"), true),
        (json!("2024-05-06T07:08:10Z"), false),
        (json!("2024-05-06T09:08:09+02:00"), true),
        (json!("2024-05-06T09:08:10+02:00"), false),
        (json!("2000-01-01T00:00:00Z"), true),
        (json!(""), false),
        (json!("yesterday"), false),
        (json!(1), false),
        (Value::Null, false),
    ];
    for (expiration, expired) in cases {
        let event = Map::from_iter([("expiration".to_owned(), expiration.clone())]);
        assert_eq!(is_expired(&event, now()), expired, "{expiration}");
    }
    assert!(!is_expired(&Map::new(), now()));
}

#[test]
fn match_variables_bind_the_event() {
    let event = Map::from_iter([("type".to_owned(), json!("widget"))]);
    let bound = outrigger_cel::Program::parse("event.type == 'widget'").unwrap();
    assert_eq!(bound.evaluate(&match_variables(&event)), Ok(true));
}
