//! Front-end speed: parsing, checking and printing the largest example theory.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn largest_example() -> (String, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut best = (String::new(), String::new());
    for entry in std::fs::read_dir(dir).expect("examples/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "action") {
            let text = std::fs::read_to_string(&path).expect("readable");
            if text.len() > best.1.len() {
                best = (
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    text,
                );
            }
        }
    }
    best
}

fn front_end(c: &mut Criterion) {
    let (name, source) = largest_example();
    c.bench_function(&format!("parse {name}"), |b| {
        b.iter(|| saddle::syntax::parse(black_box(&source), &name))
    });
    let file = saddle::syntax::parse(&source, &name).expect("the example parses");
    c.bench_function(&format!("check {name}"), |b| {
        b.iter(|| saddle::check::check(black_box(&file)))
    });
    c.bench_function(&format!("print {name}"), |b| {
        b.iter(|| saddle::syntax::print::print_file(black_box(&file)))
    });
}

criterion_group!(benches, front_end);
criterion_main!(benches);
