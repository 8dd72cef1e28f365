//! `tracer`: parse, dispatch, turn errors into messages and exit codes.

use clap::Parser;
use tracer::{
    cli::{Cli, Command},
    modes,
};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tracer: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Watch(args) => modes::watch::run(args).await,
            Command::Run(args) => modes::run::run(args).await,
            Command::Agent(args) => modes::agent::run(args).await,
            Command::Top(args) => modes::top::run(args).await,
            Command::Floor => modes::floor::run().await,
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tracer: {e:#}");
            std::process::exit(if is_not_found(&e) { 127 } else { 2 });
        }
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<tracer::modes::child::ChildError>(),
            Some(tracer::modes::child::ChildError::NotFound(_))
        )
    })
}
