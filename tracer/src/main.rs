//! `tracer`: parse, dispatch, turn errors into messages and exit codes.

use clap::Parser;
use tracer::{
    cli::{Cli, Command},
    daemon, session, top,
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
            Command::Watch(args) => session::watch(args).await,
            Command::Run(args) => session::run(args).await,
            Command::Agent(args) => daemon::run(args).await,
            Command::Top(args) => top::run(args).await,
            Command::Floor => session::floor().await,
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
            c.downcast_ref::<tracer::child::ChildError>(),
            Some(tracer::child::ChildError::NotFound(_))
        )
    })
}
