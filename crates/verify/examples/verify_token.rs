//! Verifies one Gatehouse access token and prints its claims.
//!
//! ```text
//! cargo run -p gatehouse-verify --example verify_token -- ISSUER AUDIENCE TOKEN
//! GATEHOUSE_ISSUER=https://id.example.com GATEHOUSE_AUDIENCE=notes-api \
//!     GATEHOUSE_TOKEN=eyJ... cargo run -p gatehouse-verify --example verify_token
//! ```
//!
//! With `GATEHOUSE_CLIENT_ID` and `GATEHOUSE_CLIENT_SECRET` set, a token whose key cannot be
//! had is checked by introspection instead.

#![expect(clippy::print_stdout, reason = "an example prints its result")]

use std::process::ExitCode;

use gatehouse_verify::Verifier;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut arg_or_env = |name: &str| args.next().or_else(|| std::env::var(name).ok());
    let (Some(issuer), Some(audience), Some(token)) = (
        arg_or_env("GATEHOUSE_ISSUER"),
        arg_or_env("GATEHOUSE_AUDIENCE"),
        arg_or_env("GATEHOUSE_TOKEN"),
    ) else {
        eprintln!("usage: verify_token ISSUER AUDIENCE TOKEN");
        eprintln!("   or: set GATEHOUSE_ISSUER, GATEHOUSE_AUDIENCE and GATEHOUSE_TOKEN");
        return ExitCode::from(2);
    };

    let mut builder = Verifier::builder(issuer).audience(audience);
    if let (Ok(id), Ok(secret)) = (
        std::env::var("GATEHOUSE_CLIENT_ID"),
        std::env::var("GATEHOUSE_CLIENT_SECRET"),
    ) {
        builder = builder.introspection(id, secret);
    }
    let verifier = match builder.discover().await {
        Ok(verifier) => verifier,
        Err(err) => {
            eprintln!("cannot set up the verifier: {err}");
            return ExitCode::FAILURE;
        }
    };

    match verifier.verify_or_introspect(token.trim()).await {
        Ok(claims) => {
            match serde_json::to_string_pretty(&claims) {
                Ok(json) => println!("{json}"),
                Err(err) => println!("{claims:#?} ({err})"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("token refused: {err}");
            ExitCode::FAILURE
        }
    }
}
