use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pccscope::cli::main())
}
