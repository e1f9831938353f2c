//! Outgoing mail: the mails Gatehouse sends, rendered as multipart text + HTML from
//! templates, queued in the outbox and sent through a transport.
//!
//! - this module: the [`Mail`] kinds and their rendering, and the [`Mailer`] that holds
//!   what the outbox needs (the renderer, the transport, the key that seals queued mail).
//! - [`transport`]: lettre's SMTP and file transports, and the development log.
//! - [`outbox`]: a mail is queued in the caller's transaction (`Gatehouse::enqueue_mail`)
//!   and sent by a worker on each instance, with retries; admins list and retry mail that
//!   could not be sent.

pub mod outbox;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use minijinja::{Environment, context};
use tokio::sync::Notify;

use crate::identity::types::Email;
use crate::platform::secrets::{MasterKey, SealingKey};
use crate::settings::{MailOutboxSettings, MailSettings};
use crate::{Error, Result};

pub use outbox::{MailPage, MailQuery, MailStatus, MailView};
pub use transport::Transport;

/// The label under which the key that seals queued mail is derived from the master key.
const OUTBOX_KEY_LABEL: &[u8] = b"gatehouse mail outbox sealing key";

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
    /// Logins from devices new to the account are paused after repeated wrong passwords.
    AccountLocked {
        name: Option<String>,
        failures: u64,
        locked_for: Duration,
    },
    /// To the new address of an email change: the link that confirms it.
    ConfirmEmailChange {
        name: Option<String>,
        link: String,
        valid_for: Duration,
    },
    /// To the current address: a change to `new_email` was asked for (nothing changed yet).
    EmailChangeRequested {
        name: Option<String>,
        new_email: String,
    },
    /// To the old address: the account now uses `new_email`; the link undoes it.
    EmailChanged {
        name: Option<String>,
        new_email: String,
        link: String,
        valid_for: Duration,
    },
    /// To the restored address: the change is undone, every session signed out; the link
    /// chooses a new password (a reset link).
    EmailChangeUndone {
        name: Option<String>,
        link: String,
        valid_for: Duration,
    },
    /// An upstream provider's account now signs in to this account.
    IdentityLinked {
        name: Option<String>,
        provider: String,
    },
    /// Two-factor authentication was turned on.
    MfaEnabled { name: Option<String> },
    /// Two-factor authentication was turned off.
    MfaDisabled { name: Option<String> },
}

impl Mail {
    /// The stable name of this kind of mail: its templates' name, and the `kind` the
    /// outbox stores and admins see.
    pub fn kind(&self) -> &'static str {
        match self {
            Mail::VerifyEmail { .. } => "verify_email",
            Mail::AccountExists => "account_exists",
            Mail::ResetPassword { .. } => "reset_password",
            Mail::AccountLocked { .. } => "account_locked",
            Mail::ConfirmEmailChange { .. } => "confirm_email_change",
            Mail::EmailChangeRequested { .. } => "email_change_requested",
            Mail::EmailChanged { .. } => "email_changed",
            Mail::EmailChangeUndone { .. } => "email_change_undone",
            Mail::IdentityLinked { .. } => "identity_linked",
            Mail::MfaEnabled { .. } => "mfa_enabled",
            Mail::MfaDisabled { .. } => "mfa_disabled",
        }
    }

    fn subject(&self, product: &str) -> String {
        match self {
            Mail::VerifyEmail { .. } => format!("Confirm your email address for {product}"),
            Mail::AccountExists => format!("Sign-up attempt for your {product} account"),
            Mail::ResetPassword { .. } => format!("Reset your {product} password"),
            Mail::AccountLocked { .. } => {
                format!("Failed logins to your {product} account: logins paused")
            }
            Mail::ConfirmEmailChange { .. } => {
                format!("Confirm the new email address of your {product} account")
            }
            Mail::EmailChangeRequested { .. } => {
                format!("Email change requested for your {product} account")
            }
            Mail::EmailChanged { .. } => {
                format!("The email address of your {product} account was changed")
            }
            Mail::EmailChangeUndone { .. } => {
                format!("Email change undone: secure your {product} account")
            }
            Mail::IdentityLinked { provider, .. } => {
                format!("{provider} can now sign in to your {product} account")
            }
            Mail::MfaEnabled { .. } => {
                format!("Two-factor authentication is on for your {product} account")
            }
            Mail::MfaDisabled { .. } => {
                format!("Two-factor authentication is off for your {product} account")
            }
        }
    }
}

/// Renders mail from the templates.
struct Renderer {
    from: Mailbox,
    product: String,
    issuer: String,
    templates: Environment<'static>,
}

impl Renderer {
    fn new(settings: &MailSettings, issuer: &str) -> Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| Error::invalid("invalid_config", format!("mail.from: {e}")))?;
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .map_err(|e| Error::internal(format!("mail template {name}: {e}")))?;
        }
        Ok(Self {
            from,
            product: settings.product_name.clone(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            templates,
        })
    }

    /// The whole message, headers included, as it goes over SMTP.
    fn render(
        &self,
        to: &Address,
        mail: &Mail,
        message_id: &str,
        date: DateTime<Utc>,
    ) -> Result<Vec<u8>> {
        let text = self.render_part(mail, "txt")?;
        let html = self.render_part(mail, "html")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(mail.subject(&self.product))
            .message_id(Some(message_id.to_owned()))
            .date(date.into())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(Error::internal)?;
        Ok(message.formatted())
    }

    fn render_part(&self, mail: &Mail, extension: &str) -> Result<String> {
        let template = self
            .templates
            .get_template(&format!("{}.{extension}", mail.kind()))
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
            }
            | Mail::ConfirmEmailChange {
                name,
                link,
                valid_for,
            }
            | Mail::EmailChangeUndone {
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
            Mail::MfaEnabled { name } | Mail::MfaDisabled { name } => context! {
                product => self.product,
                issuer => self.issuer,
                name => name,
            },
            Mail::EmailChangeRequested { name, new_email } => context! {
                product => self.product,
                issuer => self.issuer,
                name => name,
                new_email => new_email,
            },
            Mail::IdentityLinked { name, provider } => context! {
                product => self.product,
                issuer => self.issuer,
                name => name,
                provider => provider,
            },
            Mail::EmailChanged {
                name,
                new_email,
                link,
                valid_for,
            } => context! {
                product => self.product,
                issuer => self.issuer,
                name => name,
                new_email => new_email,
                link => link,
                valid_for => plain_duration(*valid_for),
            },
            Mail::AccountLocked {
                name,
                failures,
                locked_for,
            } => context! {
                product => self.product,
                issuer => self.issuer,
                name => name,
                failures => failures,
                locked_for => plain_duration(*locked_for),
            },
        };
        template.render(ctx).map_err(Error::internal)
    }

    /// A short plain-text message that checks the transport (`gatehouse mail test`).
    fn test_message(&self, to: &Address, message_id: &str, date: DateTime<Utc>) -> Result<Vec<u8>> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(format!("{} test message", self.product))
            .message_id(Some(message_id.to_owned()))
            .date(date.into())
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "This message checks that {} ({}) can send mail. No action is needed.\n",
                self.product, self.issuer
            ))
            .map_err(Error::internal)?;
        Ok(message.formatted())
    }

    /// A `Message-ID` unique to one mail, under the issuer's host name.
    fn new_message_id(&self, id: uuid::Uuid) -> String {
        let host = url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "gatehouse.invalid".to_owned());
        format!("<{}@{host}>", id.simple())
    }
}

/// Everything the outbox needs to render, seal and send mail: one per process.
pub struct Mailer {
    renderer: Renderer,
    transport: Transport,
    sealing: SealingKey,
    outbox: MailOutboxSettings,
    timeout: Duration,
    /// Wakes this instance's worker when mail was queued.
    queued: Arc<Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.renderer.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the configured transport and the outbox's sealing key (derived from the
    /// master key); fails on an unusable SMTP URL, `from`, or outbox setting.
    pub fn new(settings: &MailSettings, issuer: &str, master_key: &MasterKey) -> Result<Self> {
        let outbox = settings.outbox.clone();
        if outbox.lease <= settings.timeout {
            return Err(Error::invalid(
                "invalid_config",
                format!(
                    "mail.outbox.lease: must be longer than mail.timeout ({:?}), so that no \
                     other instance takes a mail over while it is being sent",
                    settings.timeout
                ),
            ));
        }
        if outbox.max_attempts == 0 {
            return Err(Error::invalid(
                "invalid_config",
                "mail.outbox.max_attempts: must be at least 1",
            ));
        }
        if outbox.poll_interval.is_zero() {
            return Err(Error::invalid(
                "invalid_config",
                "mail.outbox.poll_interval: must be more than 0",
            ));
        }
        Ok(Self {
            renderer: Renderer::new(settings, issuer)?,
            transport: Transport::new(settings)?,
            sealing: master_key.derive_sealing_key(OUTBOX_KEY_LABEL)?,
            outbox,
            timeout: settings.timeout,
            queued: Arc::default(),
        })
    }

    /// The `From` address of every mail (the SMTP envelope's sender).
    fn sender(&self) -> Address {
        self.renderer.from.email.clone()
    }
}

/// Sends one test message through the configured transport now, outside the outbox;
/// returns what the transport answered (for SMTP: the server's final response).
pub async fn send_test_message(
    settings: &MailSettings,
    issuer: &str,
    to: &str,
    now: DateTime<Utc>,
) -> std::result::Result<String, transport::SendError> {
    let renderer = Renderer::new(settings, issuer).map_err(transport::SendError::setup)?;
    let transport = Transport::new(settings).map_err(transport::SendError::setup)?;
    let to: Address = Email::parse(to)
        .map_err(transport::SendError::setup)?
        .as_str()
        .parse()
        .map_err(|e| transport::SendError::setup(format!("recipient: {e}")))?;
    let message_id = renderer.new_message_id(uuid::Uuid::new_v4());
    let raw = renderer
        .test_message(&to, &message_id, now)
        .map_err(transport::SendError::setup)?;
    let envelope = lettre::address::Envelope::new(Some(renderer.from.email.clone()), vec![to])
        .map_err(transport::SendError::setup)?;
    transport
        .send(&envelope, &raw, "test", settings.timeout)
        .await
}

const TEMPLATES: [(&str, &str); 22] = [
    (
        "verify_email.txt",
        include_str!("../../templates/mail/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/mail/verify_email.html"),
    ),
    (
        "account_exists.txt",
        include_str!("../../templates/mail/account_exists.txt"),
    ),
    (
        "account_exists.html",
        include_str!("../../templates/mail/account_exists.html"),
    ),
    (
        "reset_password.txt",
        include_str!("../../templates/mail/reset_password.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../../templates/mail/reset_password.html"),
    ),
    (
        "account_locked.txt",
        include_str!("../../templates/mail/account_locked.txt"),
    ),
    (
        "account_locked.html",
        include_str!("../../templates/mail/account_locked.html"),
    ),
    (
        "confirm_email_change.txt",
        include_str!("../../templates/mail/confirm_email_change.txt"),
    ),
    (
        "confirm_email_change.html",
        include_str!("../../templates/mail/confirm_email_change.html"),
    ),
    (
        "email_change_requested.txt",
        include_str!("../../templates/mail/email_change_requested.txt"),
    ),
    (
        "email_change_requested.html",
        include_str!("../../templates/mail/email_change_requested.html"),
    ),
    (
        "mfa_enabled.txt",
        include_str!("../../templates/mail/mfa_enabled.txt"),
    ),
    (
        "mfa_enabled.html",
        include_str!("../../templates/mail/mfa_enabled.html"),
    ),
    (
        "mfa_disabled.txt",
        include_str!("../../templates/mail/mfa_disabled.txt"),
    ),
    (
        "mfa_disabled.html",
        include_str!("../../templates/mail/mfa_disabled.html"),
    ),
    (
        "identity_linked.txt",
        include_str!("../../templates/mail/identity_linked.txt"),
    ),
    (
        "identity_linked.html",
        include_str!("../../templates/mail/identity_linked.html"),
    ),
    (
        "email_changed.txt",
        include_str!("../../templates/mail/email_changed.txt"),
    ),
    (
        "email_changed.html",
        include_str!("../../templates/mail/email_changed.html"),
    ),
    (
        "email_change_undone.txt",
        include_str!("../../templates/mail/email_change_undone.txt"),
    ),
    (
        "email_change_undone.html",
        include_str!("../../templates/mail/email_change_undone.html"),
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
