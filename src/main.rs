use std::process::ExitCode;

use clap::Parser;

// Each request allocates many small, short-lived buffers across two or more threads;
// mimalloc serves those with less contention and less time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = keyhaven::cli::Cli::parse();
    // A broken configuration is reported by the command itself; logs start as text then.
    let format = keyhaven::config::load_raw(cli.config.as_deref())
        .map(|raw| raw.logging.format)
        .unwrap_or_default();
    keyhaven::telemetry::init(format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyhaven: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(keyhaven::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // EX_TEMPFAIL: shutdown cut off work under way (logged by connection id).
        Err(e) if e.downcast_ref::<keyhaven::app::DrainCutOff>().is_some() => {
            eprintln!("keyhaven: {e:#}");
            ExitCode::from(75)
        }
        Err(e) => {
            eprintln!("keyhaven: {e:#}");
            ExitCode::FAILURE
        }
    }
}
