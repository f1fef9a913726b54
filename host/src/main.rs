//! The `cairn` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    cairn_host::cli::main()
}
