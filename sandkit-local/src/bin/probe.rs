//! `sandkit-local-probe`: drives a live local session from the command line (and
//! from a second OS process in this crate's tests).
//!
//! ```text
//! sandkit-local-probe ROOT SESSION exec CMD [ARG...]   # output passes through; exits with its code
//! sandkit-local-probe ROOT SESSION spawn CMD [ARG...]  # prints the process id
//! sandkit-local-probe ROOT SESSION logs PROCESS         # replays and follows a process's logs
//! sandkit-local-probe ROOT SESSION snapshot             # ends the session, prints the snapshot id
//! sandkit-local-probe ROOT SESSION stop
//! ```
//!
//! With `SANDKIT_LOCAL_ISOLATION=off` in its environment, its commands run on the host
//! (`LocalProviderBuilder::isolation(false)`), as a provider built that way would run
//! them.

use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;
use sandkit_core::{ExecSpec, LogStream, Provider, SessionRef, StdStream};
use sandkit_local::{LocalProvider, PROVIDER_ID};

const USAGE: &str = "usage: sandkit-local-probe ROOT SESSION (exec CMD [ARG...] | spawn CMD [ARG...] | logs PROCESS | snapshot | stop)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sandkit-local-probe: {message}");
            ExitCode::from(2)
        }
    }
}

async fn print(mut output: LogStream) -> Result<(), String> {
    while let Some(chunk) = output.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let written = match chunk.stream {
            StdStream::Stdout => std::io::stdout().write_all(&chunk.bytes),
            StdStream::Stderr => std::io::stderr().write_all(&chunk.bytes),
        };
        written.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn spec(command: &[String]) -> Result<ExecSpec, String> {
    let (program, args) = command.split_first().ok_or(USAGE)?;
    Ok(ExecSpec {
        command: program.clone(),
        args: args.to_vec(),
        ..ExecSpec::default()
    })
}

async fn run(args: &[String]) -> Result<ExitCode, String> {
    let [root, session, op, rest @ ..] = args else {
        return Err(USAGE.to_owned());
    };
    let isolation = std::env::var("SANDKIT_LOCAL_ISOLATION").map_or(true, |v| v != "off");
    let provider = LocalProvider::builder(root)
        .isolation(isolation)
        .build()
        .map_err(|e| e.to_string())?;
    let session = provider
        .attach(&SessionRef {
            provider: PROVIDER_ID.to_owned(),
            id: session.clone(),
        })
        .await
        .map_err(|e| e.to_string())?;
    match op.as_str() {
        "exec" => {
            let handle = session.exec(spec(rest)?).await.map_err(|e| e.to_string())?;
            print(handle.output).await?;
            let code = handle.exit.await.map_err(|e| e.to_string())?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        "spawn" => {
            let handle = session
                .spawn(spec(rest)?)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", handle.id);
            Ok(ExitCode::SUCCESS)
        }
        "logs" => {
            let [process] = rest else {
                return Err(USAGE.to_owned());
            };
            let logs = session
                .process_logs(process)
                .await
                .map_err(|e| e.to_string())?;
            print(logs).await?;
            Ok(ExitCode::SUCCESS)
        }
        "snapshot" => {
            let snapshot = session.snapshot().await.map_err(|e| e.to_string())?;
            println!("{}", snapshot.id);
            Ok(ExitCode::SUCCESS)
        }
        "stop" => {
            session.stop().await.map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown operation {other:?}; {USAGE}")),
    }
}
