//! How a rendered message leaves the server: lettre's SMTP transport, lettre's file
//! transport (one `.eml` per mail), or (development only) the log.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::settings::{MailSettings, MailTransportKind};
use crate::{Error, Result};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[error("{description}")]
pub struct SendError {
    /// What went wrong, fit for the outbox's `last_error` and the log: the SMTP server's
    /// answer or the connection error; never the message.
    pub description: String,
    /// The server refused the message for good (an SMTP 5xx answer): trying again will
    /// not help.
    pub permanent: bool,
}

impl SendError {
    /// A message that could not even be put together (configuration, recipient).
    pub(crate) fn setup(error: impl std::fmt::Display) -> Self {
        Self {
            description: error.to_string(),
            permanent: true,
        }
    }

    fn transient(description: String) -> Self {
        Self {
            description,
            permanent: false,
        }
    }
}

/// The configured way out.
pub enum Transport {
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Log => "Transport::Log",
            Transport::Smtp(_) => "Transport::Smtp",
            Transport::File(_) => "Transport::File",
        })
    }
}

impl Transport {
    /// The transport `[mail]` configures; fails on an unusable SMTP URL or file folder.
    pub fn new(settings: &MailSettings) -> Result<Self> {
        Ok(match settings.transport {
            MailTransportKind::Log => Transport::Log,
            MailTransportKind::Smtp => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(
                    settings.smtp_url.expose_secret(),
                )
                .map_err(|_| {
                    Error::invalid(
                        "invalid_config",
                        "mail.smtp_url: not a valid smtp:// or smtps:// URL",
                    )
                })?
                .timeout(Some(settings.timeout))
                .build();
                Transport::Smtp(smtp)
            }
            MailTransportKind::File => {
                std::fs::create_dir_all(&settings.file_dir).map_err(|e| {
                    Error::invalid(
                        "invalid_config",
                        format!(
                            "mail.file_dir: cannot create {}: {e}",
                            settings.file_dir.display()
                        ),
                    )
                })?;
                Transport::File(AsyncFileTransport::new(&settings.file_dir))
            }
        })
    }

    /// Sends one rendered message, giving up after `timeout` in all; returns what the
    /// transport answered (SMTP: the server's response to the message, e.g.
    /// `250 2.0.0 Ok: queued as 4XyZ`).
    pub async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
        kind: &str,
        timeout: Duration,
    ) -> std::result::Result<String, SendError> {
        let sending = async {
            match self {
                Transport::Log => {
                    let to = envelope
                        .to()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    tracing::info!(
                        target: "gatehouse::mail",
                        to = %to,
                        mail = kind,
                        "mail.transport = log (development only); the message follows:\n{}",
                        String::from_utf8_lossy(message)
                    );
                    Ok("written to the log".to_owned())
                }
                Transport::Smtp(smtp) => match smtp.send_raw(envelope, message).await {
                    Ok(response) => {
                        let text = response.message().collect::<Vec<_>>().join(" ");
                        Ok(format!("{} {text}", response.code()))
                    }
                    Err(e) => Err(SendError {
                        description: e.to_string(),
                        permanent: e.is_permanent(),
                    }),
                },
                Transport::File(file) => file
                    .send_raw(envelope, message)
                    .await
                    .map(|id| format!("written as {id}.eml"))
                    .map_err(|e| SendError::transient(e.to_string())),
            }
        };
        match tokio::time::timeout(timeout, sending).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SendError::transient(format!(
                "no answer within mail.timeout ({timeout:?})"
            ))),
        }
    }
}
