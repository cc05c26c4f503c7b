//! What a typed-world hook returns: a scope list and claims as (name, JSON text) pairs,
//! through the checks the engine applies. The input is text: a first line `scope a b c`
//! (or `-` for no scope change), then one claim per line as `name<TAB>json`.
#![no_main]

#[path = "answer_checks.rs"]
mod answer_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let scope = match lines.next() {
        Some(line) if line.starts_with("scope") => Some(
            line["scope".len()..]
                .split(' ')
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    };
    let claims = lines
        .map(|line| match line.split_once('\t') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect();
    let mut log = hookd::hooks::HookLog::default();
    let checked = hookd::hooks::answer::check_typed_answer(scope, claims, 4096, &mut log);
    answer_checks::holds(checked, &log);
});
