//! Phone normalization per second: every inbound message and every send parses at least
//! one number, and phonenumber 0.3.10 serializes parses behind a global mutex. The
//! `phone` group repeats one number, so it measures the parse cache; `phone_first_seen`
//! gives every iteration a number never parsed before (the cache holds far fewer).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::{PhoneNumber, PhoneParser};

fn bench(c: &mut Criterion) {
    let parser = PhoneParser::default();
    let nl = PhoneParser::with_region("NL").expect("NL is a region");
    parser.warm_up();
    nl.warm_up();
    let mut g = c.benchmark_group("phone");
    g.throughput(Throughput::Elements(1));
    g.bench_function("e164_us", |b| {
        b.iter(|| parser.parse(black_box("+14155552671")))
    });
    g.bench_function("whatsapp_prefixed_nl", |b| {
        b.iter(|| parser.parse(black_box("whatsapp:+31612345678")))
    });
    g.bench_function("national_with_region", |b| {
        b.iter(|| nl.parse(black_box("06 12345678")))
    });
    g.bench_function("meta_wa_id", |b| {
        b.iter(|| PhoneNumber::from_wa_id(black_box("31612345678")))
    });
    g.bench_function("invalid", |b| b.iter(|| parser.parse(black_box("+999123"))));
    g.finish();

    let mut g = c.benchmark_group("phone_first_seen");
    g.throughput(Throughput::Elements(1));
    let mut n: u64 = 0;
    g.bench_function("e164_nl_mobile", |b| {
        b.iter(|| {
            n = (n + 1) % 100_000_000;
            parser.parse(black_box(&format!("+316{n:08}")))
        })
    });
    let mut n: u64 = 0;
    g.bench_function("twilio_us", |b| {
        b.iter(|| {
            n = (n + 1) % 10_000_000;
            parser.parse(black_box(&format!("whatsapp:+1415{n:07}")))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
