//! Mail cooldowns: at most one mail of each kind to one address per
//! `tokens.mail_cooldown`, however often it is asked for and by however many requests at
//! once. The counter is keyed by an HMAC of purpose and address, and is claimed for
//! unknown addresses too, so that a request costs the same work either way.

use chrono::{DateTime, Utc};
use gatehouse_entity::mail_cooldowns;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::identity::types::Email;
use crate::{Gatehouse, Result};

/// The kinds of mail a stranger can ask Gatehouse to send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MailPurpose {
    VerifyEmail,
    ResetPassword,
    /// The notice that a sign-up used an address that already has an account.
    AccountExists,
}

impl MailPurpose {
    fn as_str(self) -> &'static str {
        match self {
            MailPurpose::VerifyEmail => "mail_verify_email",
            MailPurpose::ResetPassword => "mail_reset_password",
            MailPurpose::AccountExists => "mail_account_exists",
        }
    }
}

impl Gatehouse {
    /// Claims the right to mail `email` for `purpose` now: `true` at most once per
    /// cooldown. Of concurrent claims exactly one wins: each statement is conditional,
    /// and the second waits for the first's row.
    pub(crate) async fn claim_mail_slot(
        &self,
        conn: &impl ConnectionTrait,
        purpose: MailPurpose,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let key = self.cooldown_key(purpose, email);
        let cooldown =
            chrono::Duration::from_std(self.settings.tokens.mail_cooldown).unwrap_or_default();
        let renewed = mail_cooldowns::Entity::update_many()
            .col_expr(mail_cooldowns::Column::LastSentAt, Expr::value(now))
            .filter(mail_cooldowns::Column::KeyHash.eq(&key))
            .filter(mail_cooldowns::Column::LastSentAt.lte(now - cooldown))
            .exec(conn)
            .await?
            .rows_affected;
        if renewed == 1 {
            return Ok(true);
        }
        let inserted = mail_cooldowns::Entity::insert(cooldown_row(key, now))
            .on_conflict(
                OnConflict::column(mail_cooldowns::Column::KeyHash)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        Ok(inserted == 1)
    }

    /// Starts the cooldown of a mail that is sent whatever came before (the first
    /// verification mail of a new account).
    pub(crate) async fn start_mail_cooldown(
        &self,
        conn: &impl ConnectionTrait,
        purpose: MailPurpose,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<()> {
        mail_cooldowns::Entity::insert(cooldown_row(self.cooldown_key(purpose, email), now))
            .on_conflict(
                OnConflict::column(mail_cooldowns::Column::KeyHash)
                    .update_column(mail_cooldowns::Column::LastSentAt)
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// The key of the cooldown of mails of `purpose` to `email`.
    fn cooldown_key(&self, purpose: MailPurpose, email: &Email) -> String {
        self.keyed.lookup_key(purpose.as_str(), email.as_str())
    }

    /// Deletes cooldowns that are over.
    pub(crate) async fn purge_mail_cooldowns(&self, now: DateTime<Utc>) -> Result<u64> {
        let cooldown =
            chrono::Duration::from_std(self.settings.tokens.mail_cooldown).unwrap_or_default();
        Ok(mail_cooldowns::Entity::delete_many()
            .filter(mail_cooldowns::Column::LastSentAt.lte(now - cooldown))
            .exec(&self.writer)
            .await?
            .rows_affected)
    }
}

/// A cooldown starting `now`.
fn cooldown_row(key: String, now: DateTime<Utc>) -> mail_cooldowns::ActiveModel {
    mail_cooldowns::ActiveModel {
        key_hash: Set(key),
        last_sent_at: Set(now),
    }
}
