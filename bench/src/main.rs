//! The `cairn-bench` command: runs the side-by-side benchmark, prints the
//! table, and with `--write` puts it into BENCHMARKS.md.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_bench::sections::Mode;
use cairn_bench::{Part, report, run};
use clap::Parser;

/// Measures cairn against the same validator compiled natively, against
/// Extism and against a Rego policy in regorus, and its fault proxy against
/// direct, haproxy and noxious, and prints the results as a Markdown table.
/// Build it with `--release`: `bench/run` does, and installs the toolchains
/// the Python and JavaScript plugins and the proxy section need first.
#[derive(Parser)]
#[command(name = "cairn-bench", version)]
struct Args {
    /// Write the table into this file between the `cairn-bench` markers
    /// (the rest of the file is kept; the block is appended when missing).
    #[arg(long, value_name = "FILE", conflicts_with = "only")]
    write: Option<PathBuf>,
    /// A few samples per measurement, to check that everything runs
    /// (seconds instead of minutes; figures not worth quoting).
    #[arg(long)]
    quick: bool,
    /// Run only these parts (repeat, or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) && !args.quick {
        eprintln!(
            "cairn-bench: warning: this is a debug build; figures will be far off (use --release)"
        );
    }
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    let parts = if args.only.is_empty() {
        Part::ALL.to_vec()
    } else {
        args.only.clone()
    };
    let report = match run(mode, &parts, |part| {
        eprintln!("cairn-bench: measuring {part:?}…")
    }) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("cairn-bench: error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let markdown = report.to_markdown();
    println!("{markdown}");
    if let Some(path) = &args.write {
        if let Err(err) = report::write_into(path, &markdown) {
            eprintln!("cairn-bench: error: {err:#}");
            return ExitCode::FAILURE;
        }
        eprintln!("cairn-bench: wrote the table into {}", path.display());
    }
    ExitCode::SUCCESS
}
