# hookd development tasks; `just` lists them. Each wraps a cargo command, so nothing here is
# needed to build or test hookd.

# List the recipes
default:
    @just --list

# Install what builds need (the wasm32-wasip2 target)
setup:
    cargo xtask setup

# Build the seed example hook and run it through the local runner
demo:
    cargo xtask demo

# PostgreSQL and three hookd nodes on 127.0.0.1 sharing it (Enter stops them)
cluster nodes="3":
    cargo xtask cluster {{nodes}}

# Run every test (extra arguments go to `cargo test --workspace`)
test *args:
    cargo xtask test {{args}}

# Formatting and clippy, warnings denied
lint:
    cargo fmt --all --check
    cargo clippy --all-targets -- -D warnings

# Benchmarks on a release build; docs/BENCHMARKS.md records the results
bench:
    cargo xtask setup
    cargo bench -p hookd-tests --bench hooks
    cargo bench -p hookd-tests --bench token_load
    cargo bench -p hookd-tests --bench join
    cargo bench -p hookd-tests --bench peer

# Every fuzz target for SECONDS (default 20) on its seed corpus
fuzz seconds="20":
    cargo xtask fuzz {{seconds}}

# What CI runs
ci: lint test fuzz
