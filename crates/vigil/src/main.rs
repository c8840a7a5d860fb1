//! `vigil`: parse the command line, run, map the exit code.

use clap::Parser;
use clap::error::ErrorKind;

#[tokio::main]
async fn main() {
    let cli = match vigil::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One line naming the bad flag, not a page of usage.
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            std::process::exit(2);
        }
    };
    if let Err(e) = vigil::run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
