//! `kith-bench`: the benchmark driver. See `BENCHMARKS.md` and `kith-bench --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    kith_tests::bench::main()
}
