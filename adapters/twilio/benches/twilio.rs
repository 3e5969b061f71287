//! Signature verifications and inbound parses per second, on a realistic ~15-parameter
//! WhatsApp form.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::{ChannelAdapter, WebhookRequest};
use switchboard_twilio::signature::{compute_signature, validate_signature};
use switchboard_twilio::{Form, parse_form};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp, testing};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "https://sb.example.com/webhooks/twilio-whatsapp";

fn form() -> Vec<(String, String)> {
    [
        ("SmsMessageSid", "SM8824d91645395b17594d92659b878468"),
        ("NumMedia", "0"),
        ("ProfileName", "Jane Doe"),
        ("MessageType", "text"),
        ("SmsSid", "SM8824d91645395b17594d92659b878468"),
        ("WaId", "31612345678"),
        ("SmsStatus", "received"),
        (
            "Body",
            "Hello, I would like to know the status of my order #12345, thanks!",
        ),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", "SM8824d91645395b17594d92659b878468"),
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("From", "whatsapp:+31612345678"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn bench(c: &mut Criterion) {
    let pairs = form();
    let body = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let sig = compute_signature(TOKEN, URL, &pairs);

    let mut group = c.benchmark_group("twilio");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_signature_15_params", |b| {
        b.iter(|| {
            // Decoding the raw body is part of every verification.
            let form = Form::parse(black_box(body.as_bytes()));
            assert!(validate_signature(
                TOKEN,
                URL,
                form.pairs(),
                black_box(&sig)
            ));
        });
    });

    let account = testing::account(testing::TEST_ACCOUNT_SID, TOKEN, "+14155238886");
    let config = TwilioConfig {
        public_url: "https://sb.example.com".into(),
        ..TwilioConfig::default()
    };
    group.bench_function("parse_inbound_text", |b| {
        b.iter(|| {
            let form = Form::parse(black_box(body.as_bytes()));
            let parsed = parse_form(&config, "/webhooks/twilio-whatsapp", &form, &[&account]);
            assert_eq!(parsed.events.len(), 1);
            parsed
        });
    });
    // What the router asks of the adapter per webhook: routing keys, signature, parse, on
    // one request as it arrived (nothing decoded yet).
    let adapter = TwilioWhatsApp::new(config.clone());
    let request = testing::signed_webhook_request(
        "https://sb.example.com",
        "/webhooks/twilio-whatsapp",
        None,
        TOKEN,
        &pairs,
    );
    group.bench_function("route_verify_parse_inbound_text", |b| {
        b.iter(|| {
            let request = black_box(&request);
            let request = WebhookRequest {
                method: request.method.clone(),
                path: request.path.clone(),
                query: request.query.clone(),
                headers: request.headers.clone(),
                body: request.body.clone(),
                memo: Default::default(),
            };
            assert_eq!(adapter.routing_keys(&request).unwrap().len(), 2);
            adapter.verify_webhook(&request, &account).unwrap();
            let parsed = adapter.parse_webhook(&request, &[&account]).unwrap();
            assert_eq!(parsed.events.len(), 1);
            parsed
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
