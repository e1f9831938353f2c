//! The mail outbox: a transactional queue of the mails Gatehouse promised.
//!
//! **Queueing.** `Gatehouse::enqueue_mail` renders the message and inserts its row in the
//! caller's transaction, so the mail exists exactly when the token it carries does: a
//! rollback takes both, a commit keeps both. After the commit the caller calls
//! [`Gatehouse::wake_mail_worker`] so that this instance sends at once; every instance
//! also polls every `mail.outbox.poll_interval`.
//!
//! **At rest.** A row keeps what is needed to send and to show admins: the recipient, the
//! kind, the delivery state, the `Message-ID`, and the rendered message sealed with
//! AES-256-GCM under a key derived from the master key (the row's id is the associated
//! data, so a sealed message cannot be moved to another row). The link's token is inside
//! the sealed message only, and the sealed message is deleted in the statement that marks
//! the mail sent. Someone who reads the database (or a backup) without the master key
//! learns who is getting which kind of mail, never a link.
//!
//! **Sending.** A worker claims a due row with one conditional `UPDATE` (`status =
//! 'pending' AND next_attempt_at <= now`) that moves `next_attempt_at` a lease ahead and
//! writes a fresh claim id: of two instances, exactly one changes the row, on SQLite
//! and PostgreSQL alike. Only the holder of the claim records the outcome: `sent`, a
//! retry after `first_retry_after * 2^(attempts-1)`, or `dead` after `max_attempts`
//! (or at once when the SMTP server refuses the message for good).
//!
//! **At least once.** The one duplicate left: the SMTP server accepts the message and
//! the process dies (or loses the database) before the row is marked sent. After the
//! lease the mail is sent again, with the same `Message-ID` header, so mail systems and
//! clients that deduplicate by `Message-ID` show it once. A send is cut off after
//! `mail.timeout`, shorter than the lease (checked at start), so a claim never runs out
//! while its holder is still sending.

use chrono::{DateTime, Utc};
use gatehouse_entity::mail_outbox;
use lettre::Address;
use lettre::address::Envelope;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::identity::types::Email;
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::metrics::MailEvent;
use crate::{Error, Gatehouse, Result};

/// Mails claimed per round, per instance.
const BATCH: u64 = 20;

/// Longest `last_error` kept.
const MAX_ERROR_LENGTH: usize = 500;

/// Where a queued mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Not sent yet: due now, or waiting for a retry.
    Pending,
    /// Accepted by the transport; the message itself is deleted.
    Sent,
    /// Given up after `mail.outbox.max_attempts` (or refused for good); an admin can retry.
    Dead,
}

impl MailStatus {
    /// The value stored in `mail_outbox.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Pending => "pending",
            MailStatus::Sent => "sent",
            MailStatus::Dead => "dead",
        }
    }

    fn from_stored(stored: &str) -> Self {
        match stored {
            "sent" => MailStatus::Sent,
            "dead" => MailStatus::Dead,
            _ => MailStatus::Pending,
        }
    }
}

/// A queued mail as an admin sees it: never the message or its link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MailView {
    pub id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub status: MailStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When a pending mail is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<mail_outbox::Model> for MailView {
    fn from(m: mail_outbox::Model) -> Self {
        let status = MailStatus::from_stored(&m.status);
        Self {
            id: m.id,
            recipient: m.recipient,
            kind: m.kind,
            status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            last_attempt_at: m.last_attempt_at,
            next_attempt_at: m.next_attempt_at.filter(|_| status == MailStatus::Pending),
            sent_at: m.sent_at,
        }
    }
}

/// Filters of the mail list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MailQuery {
    /// Only mail in this state.
    pub status: Option<MailStatus>,
    pub limit: Option<u64>,
    pub cursor: Option<Uuid>,
}

/// One page of queued mail, oldest first; pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MailPage {
    pub mail: Vec<MailView>,
    pub next_cursor: Option<Uuid>,
}

/// The associated data a row's message is sealed with.
fn seal_context(id: Uuid) -> Vec<u8> {
    let mut context = b"mail_outbox:".to_vec();
    context.extend_from_slice(id.as_bytes());
    context
}

fn recipient_address(to: &Email) -> Result<Address> {
    to.as_str()
        .parse()
        .map_err(|e| Error::internal(format!("recipient: {e}")))
}

impl Gatehouse {
    /// Queues `mail` to `to` in the caller's transaction `txn`: the mail is sent if and
    /// only if the transaction commits. Call [`Gatehouse::wake_mail_worker`] after the
    /// commit so it goes out at once (otherwise it waits for the next poll):
    ///
    /// ```ignore
    /// let txn = self.begin_write().await?;
    /// // ... the change the mail is about ...
    /// self.enqueue_mail(&txn, &email, Mail::ResetPassword { .. }).await?;
    /// txn.commit().await?;
    /// self.wake_mail_worker();
    /// ```
    pub(crate) async fn enqueue_mail(
        &self,
        txn: &impl ConnectionTrait,
        to: &Email,
        mail: Mail,
    ) -> Result<()> {
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let (message_id, sealed) = self.render_sealed(id, to, &mail, now)?;
        mail_outbox::Entity::insert(mail_outbox::ActiveModel {
            id: sea_orm::Set(id),
            recipient: sea_orm::Set(to.as_str().to_owned()),
            kind: sea_orm::Set(mail.kind().to_owned()),
            status: sea_orm::Set(MailStatus::Pending.as_str().to_owned()),
            message_id: sea_orm::Set(message_id),
            sealed_message: sea_orm::Set(Some(sealed)),
            attempts: sea_orm::Set(0),
            next_attempt_at: sea_orm::Set(Some(now)),
            claim_id: sea_orm::Set(None),
            last_error: sea_orm::Set(None),
            created_at: sea_orm::Set(now),
            last_attempt_at: sea_orm::Set(None),
            sent_at: sea_orm::Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        // Counted when written: a transaction that then fails (a database error) leaves
        // the count one ahead of the table.
        self.metrics.mail(mail.kind(), MailEvent::Queued);
        Ok(())
    }

    /// The work of [`Gatehouse::enqueue_mail`] without its effect, for a request that
    /// sends no mail but must cost what one that does costs (an unknown address asking
    /// for a reset link): the same rendering and sealing, and one write statement on the
    /// outbox by primary key, which matches no row.
    pub(crate) async fn enqueue_decoy_mail(
        &self,
        txn: &impl ConnectionTrait,
        mail: Mail,
    ) -> Result<()> {
        let now = self.clock.now();
        let decoy = Email::parse("decoy@gatehouse.invalid")?;
        let (_, sealed) = self.render_sealed(Uuid::now_v7(), &decoy, &mail, now)?;
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::SealedMessage, Expr::value(sealed))
            .filter(mail_outbox::Column::Id.eq(Uuid::nil()))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Tells this instance's mail worker that mail was queued (call after the commit).
    pub fn wake_mail_worker(&self) {
        self.mailer.queued.notify_one();
    }

    fn render_sealed(
        &self,
        id: Uuid,
        to: &Email,
        mail: &Mail,
        now: DateTime<Utc>,
    ) -> Result<(String, Vec<u8>)> {
        let renderer = &self.mailer.renderer;
        let message_id = renderer.new_message_id(id);
        let raw = renderer.render(&recipient_address(to)?, mail, &message_id, now)?;
        let sealed = self.mailer.sealing.seal(&raw, &seal_context(id))?;
        Ok((message_id, sealed))
    }

    /// This instance's mail worker, for as long as the process runs: sends due mail when
    /// woken by [`Gatehouse::wake_mail_worker`] and every `mail.outbox.poll_interval`.
    pub async fn run_mail_worker(self) {
        let mut ticks = tokio::time::interval(self.mailer.outbox.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queued = self.mailer.queued.clone();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = queued.notified() => {}
            }
            loop {
                match self.send_due_mail().await {
                    // A full batch: there may be more.
                    Ok(claimed) if u64::try_from(claimed).unwrap_or(u64::MAX) >= BATCH => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "sending queued mail failed");
                        break;
                    }
                }
            }
        }
    }

    /// Claims and sends the mail that is due now; returns how many this instance claimed.
    pub async fn send_due_mail(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = mail_outbox::Entity::find()
            .select_only()
            .column(mail_outbox::Column::Id)
            .filter(mail_outbox::Column::Status.eq(MailStatus::Pending.as_str()))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(BATCH)
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?;
        let mut claimed = 0;
        for id in due {
            if let Some(row) = self.claim_mail(id).await? {
                claimed += 1;
                self.deliver(row).await?;
            }
        }
        Ok(claimed)
    }

    /// Takes one due mail for this instance: the conditional update changes the row for
    /// exactly one of any number of instances that try at once. The lease starts now,
    /// right before this mail's send (not when the batch was read: the sends before it
    /// may have taken up to `mail.timeout` each), so it outlasts the send.
    async fn claim_mail(&self, id: Uuid) -> Result<Option<mail_outbox::Model>> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.mailer.outbox.lease).unwrap_or_default();
        let claim = Uuid::new_v4();
        let changed = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::ClaimId, Expr::value(claim))
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(now + lease))
            .col_expr(
                mail_outbox::Column::Attempts,
                Expr::col(mail_outbox::Column::Attempts).add(1),
            )
            .col_expr(mail_outbox::Column::LastAttemptAt, Expr::value(now))
            .filter(mail_outbox::Column::Id.eq(id))
            .filter(mail_outbox::Column::Status.eq(MailStatus::Pending.as_str()))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .exec(&self.writer)
            .await?
            .rows_affected;
        if changed != 1 {
            return Ok(None);
        }
        Ok(mail_outbox::Entity::find_by_id(id)
            .filter(mail_outbox::Column::ClaimId.eq(claim))
            .one(&self.db)
            .await?)
    }

    /// Sends one claimed mail and records the outcome under the claim.
    async fn deliver(&self, row: mail_outbox::Model) -> Result<()> {
        let outcome = match self.open_message(&row) {
            Ok((envelope, message)) => {
                self.mailer
                    .transport
                    .send(&envelope, &message, &row.kind, self.mailer.timeout)
                    .await
            }
            Err(e) => Err(e),
        };
        let now = self.clock.now();
        let mine = || {
            mail_outbox::Entity::update_many()
                .filter(mail_outbox::Column::Id.eq(row.id))
                .filter(mail_outbox::Column::ClaimId.eq(row.claim_id))
        };
        match outcome {
            Ok(_) => {
                mine()
                    .col_expr(
                        mail_outbox::Column::Status,
                        Expr::value(MailStatus::Sent.as_str()),
                    )
                    .col_expr(
                        mail_outbox::Column::SealedMessage,
                        Expr::value(Option::<Vec<u8>>::None),
                    )
                    .col_expr(mail_outbox::Column::SentAt, Expr::value(now))
                    .col_expr(
                        mail_outbox::Column::NextAttemptAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(
                        mail_outbox::Column::ClaimId,
                        Expr::value(Option::<Uuid>::None),
                    )
                    .col_expr(
                        mail_outbox::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .exec(&self.writer)
                    .await?;
                tracing::info!(mail = %row.kind, attempts = row.attempts, "mail sent");
                self.metrics.mail(&row.kind, MailEvent::Sent);
            }
            Err(error) => {
                let settings = &self.mailer.outbox;
                let description: String =
                    error.description.chars().take(MAX_ERROR_LENGTH).collect();
                tracing::warn!(
                    mail = %row.kind,
                    attempts = row.attempts,
                    error = %description,
                    "mail delivery failed"
                );
                self.metrics.mail(&row.kind, MailEvent::Failed);
                let max = i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
                let update = mine()
                    .col_expr(
                        mail_outbox::Column::LastError,
                        Expr::value(description.clone()),
                    )
                    .col_expr(
                        mail_outbox::Column::ClaimId,
                        Expr::value(Option::<Uuid>::None),
                    );
                if error.permanent || row.attempts >= max {
                    let txn = self.begin_write().await?;
                    let changed = update
                        .col_expr(
                            mail_outbox::Column::Status,
                            Expr::value(MailStatus::Dead.as_str()),
                        )
                        .col_expr(
                            mail_outbox::Column::NextAttemptAt,
                            Expr::value(Option::<DateTime<Utc>>::None),
                        )
                        .exec(&txn)
                        .await?
                        .rows_affected;
                    if changed == 1 {
                        let entry = AuditEntry {
                            event: AuditEvent::MailDead,
                            actor: None,
                            subject: None,
                            session: None,
                            details: Some(json!({
                                "mail_id": row.id,
                                "kind": row.kind,
                                "attempts": row.attempts,
                                "error": description,
                            })),
                        };
                        audit::record(&txn, now, &RequestMeta::default(), entry).await?;
                    }
                    txn.commit().await?;
                    if changed == 1 {
                        self.metrics.mail(&row.kind, MailEvent::Dead);
                    }
                } else {
                    let factor = 2u32.saturating_pow(u32::try_from(row.attempts - 1).unwrap_or(0));
                    let wait = settings.first_retry_after.saturating_mul(factor);
                    let next = chrono::Duration::from_std(wait)
                        .ok()
                        .and_then(|wait| now.checked_add_signed(wait))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    update
                        .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(next))
                        .exec(&self.writer)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The envelope and the opened message of a row.
    fn open_message(
        &self,
        row: &mail_outbox::Model,
    ) -> std::result::Result<(Envelope, Vec<u8>), super::transport::SendError> {
        use super::transport::SendError;
        let sealed = row
            .sealed_message
            .as_deref()
            .ok_or_else(|| SendError::setup("the message is no longer stored"))?;
        let message = self
            .mailer
            .sealing
            .open(sealed, &seal_context(row.id))
            .map_err(|_| {
                SendError::setup("the message does not decrypt under the configured master key")
            })?;
        let to: Address = row
            .recipient
            .parse()
            .map_err(|e| SendError::setup(format!("recipient: {e}")))?;
        let envelope =
            Envelope::new(Some(self.mailer.sender()), vec![to]).map_err(SendError::setup)?;
        Ok((envelope, message))
    }

    /// One page of queued mail (`limit` rows at most), oldest first: recipient, kind and
    /// delivery state, never the message. For admins: see `admin_list_mail`.
    pub(crate) async fn list_mail(&self, query: MailQuery, limit: u64) -> Result<MailPage> {
        let mut select = mail_outbox::Entity::find().order_by_asc(mail_outbox::Column::Id);
        if let Some(status) = query.status {
            select = select.filter(mail_outbox::Column::Status.eq(status.as_str()));
        }
        if let Some(cursor) = query.cursor {
            select = select.filter(mail_outbox::Column::Id.gt(cursor));
        }
        let mut rows = select.limit(limit + 1).all(&self.db).await?;
        let next_cursor = if rows.len() as u64 > limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            rows.last().map(|m| m.id)
        } else {
            None
        };
        Ok(MailPage {
            mail: rows.into_iter().map(MailView::from).collect(),
            next_cursor,
        })
    }

    /// Puts a dead mail back in the queue with a fresh set of attempts, audited as
    /// `mail_retried` by `actor`; `Conflict mail_not_dead` for a mail that is pending or
    /// sent. For admins: see `admin_retry_mail`.
    pub(crate) async fn requeue_dead_mail(
        &self,
        actor: Uuid,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<MailView> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let changed = mail_outbox::Entity::update_many()
            .col_expr(
                mail_outbox::Column::Status,
                Expr::value(MailStatus::Pending.as_str()),
            )
            .col_expr(mail_outbox::Column::Attempts, Expr::value(0))
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(now))
            .col_expr(
                mail_outbox::Column::ClaimId,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(mail_outbox::Column::Id.eq(id))
            .filter(mail_outbox::Column::Status.eq(MailStatus::Dead.as_str()))
            .filter(mail_outbox::Column::SealedMessage.is_not_null())
            .exec(&txn)
            .await?
            .rows_affected;
        let row = mail_outbox::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("mail"))?;
        if changed != 1 {
            return Err(Error::Conflict {
                code: "mail_not_dead",
                message: format!("only dead mail can be retried; this one is {}", row.status),
            });
        }
        let entry = AuditEntry {
            event: AuditEvent::MailRetried,
            actor: Some(actor),
            subject: None,
            session: None,
            details: Some(json!({ "mail_id": row.id, "kind": row.kind })),
        };
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(row.into())
    }

    /// Deletes sent mail older than `mail.outbox.sent_retention` and dead mail last tried
    /// longer ago than `mail.outbox.dead_retention`.
    pub(crate) async fn purge_mail_outbox(&self, now: DateTime<Utc>) -> Result<u64> {
        let settings = &self.mailer.outbox;
        let sent_before =
            now - chrono::Duration::from_std(settings.sent_retention).unwrap_or_default();
        let dead_before =
            now - chrono::Duration::from_std(settings.dead_retention).unwrap_or_default();
        let sent = mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::Status.eq(MailStatus::Sent.as_str()))
            .filter(mail_outbox::Column::SentAt.lte(sent_before))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let dead = mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::Status.eq(MailStatus::Dead.as_str()))
            .filter(mail_outbox::Column::LastAttemptAt.lte(dead_before))
            .exec(&self.writer)
            .await?
            .rows_affected;
        Ok(sent + dead)
    }
}
