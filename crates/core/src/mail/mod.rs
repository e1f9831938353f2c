//! Outgoing mail: multipart text + HTML rendered from templates, sent through lettre by
//! SMTP, written to `.eml` files, or (development only) written to the log.
//!
//! Sending happens in the background: a failed send is logged and never changes the
//! answer to the request, and a request takes the same time whichever mail it causes.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{Environment, context};
use secrecy::ExposeSecret;

use crate::identity::types::Email;
use crate::settings::{MailSettings, MailTransportKind};
use crate::{Error, Result};

/// The mails this server sends.
#[derive(Debug, Clone)]
pub enum Mail {
    /// Confirm the address of a new account.
    VerifyEmail {
        name: Option<String>,
        link: String,
        valid_for: Duration,
    },
    /// Someone tried to sign up with an address that has an account.
    AccountExists,
    /// A link to choose a new password.
    ResetPassword {
        name: Option<String>,
        link: String,
        valid_for: Duration,
    },
}

impl Mail {
    fn template(&self) -> &'static str {
        match self {
            Mail::VerifyEmail { .. } => "verify_email",
            Mail::AccountExists => "account_exists",
            Mail::ResetPassword { .. } => "reset_password",
        }
    }

    fn subject(&self, product: &str) -> String {
        match self {
            Mail::VerifyEmail { .. } => format!("Confirm your email address for {product}"),
            Mail::AccountExists => format!("Sign-up attempt for your {product} account"),
            Mail::ResetPassword { .. } => format!("Reset your {product} password"),
        }
    }
}

enum Transport {
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Renders and sends mail.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    product: String,
    issuer: String,
    templates: Environment<'static>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the configured transport; fails on an unusable SMTP URL or `from`.
    pub fn new(settings: &MailSettings, issuer: &str) -> Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| Error::invalid("invalid_config", format!("mail.from: {e}")))?;
        let transport = match settings.transport {
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
        };
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .map_err(|e| Error::internal(format!("mail template {name}: {e}")))?;
        }
        Ok(Self {
            transport,
            from,
            product: settings.product_name.clone(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            templates,
        })
    }

    /// Renders `mail` and sends it in the background.
    pub fn send_in_background(self: &std::sync::Arc<Self>, to: &Email, mail: Mail) {
        let mailer = self.clone();
        let to = to.clone();
        tokio::spawn(async move {
            // Let the request that asked finish first: its answer should not wait for
            // (nor its timing tell of) a mail being rendered and sent.
            tokio::task::yield_now().await;
            let kind = mail.template();
            if let Err(e) = mailer.send(&to, mail).await {
                tracing::warn!(mail = kind, error = %e, "mail delivery failed");
            }
        });
    }

    /// Renders and sends `mail` now.
    pub async fn send(&self, to: &Email, mail: Mail) -> Result<()> {
        let message = self.render(to, &mail)?;
        match &self.transport {
            Transport::Log => {
                let text = self.render_part(&mail, "txt")?;
                tracing::info!(
                    target: "gatehouse::mail",
                    to = %to,
                    subject = %mail.subject(&self.product),
                    "mail.transport = log (development only); the message follows:\n{text}"
                );
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await.map_err(Error::internal)?;
            }
            Transport::File(file) => {
                file.send(message).await.map_err(Error::internal)?;
            }
        }
        tracing::info!(mail = mail.template(), "mail sent");
        Ok(())
    }

    fn render(&self, to: &Email, mail: &Mail) -> Result<Message> {
        let to: Mailbox = to
            .as_str()
            .parse()
            .map_err(|e| Error::internal(format!("recipient: {e}")))?;
        let text = self.render_part(mail, "txt")?;
        let html = self.render_part(mail, "html")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject(&self.product))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(Error::internal)
    }

    fn render_part(&self, mail: &Mail, extension: &str) -> Result<String> {
        let template = self
            .templates
            .get_template(&format!("{}.{extension}", mail.template()))
            .map_err(Error::internal)?;
        let ctx = match mail {
            Mail::VerifyEmail {
                name,
                link,
                valid_for,
            }
            | Mail::ResetPassword {
                name,
                link,
                valid_for,
            } => {
                context! {
                    product => self.product,
                    issuer => self.issuer,
                    name => name,
                    link => link,
                    valid_for => plain_duration(*valid_for),
                }
            }
            Mail::AccountExists => context! { product => self.product, issuer => self.issuer },
        };
        template.render(ctx).map_err(Error::internal)
    }
}

const TEMPLATES: [(&str, &str); 6] = [
    (
        "verify_email.txt",
        include_str!("../templates/mail/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/mail/verify_email.html"),
    ),
    (
        "account_exists.txt",
        include_str!("../templates/mail/account_exists.txt"),
    ),
    (
        "account_exists.html",
        include_str!("../templates/mail/account_exists.html"),
    ),
    (
        "reset_password.txt",
        include_str!("../templates/mail/reset_password.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../templates/mail/reset_password.html"),
    ),
];

/// "24 hours", "1 hour", "30 minutes": how long a link lasts, in words.
fn plain_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}
