//! Checking a presented second factor against an account: a code of its confirmed TOTP
//! credential, or one of its unused recovery codes. A factor that matches is used up in
//! the caller's transaction by a conditional write, so of two requests racing with the
//! same code only one passes.

use chrono::{DateTime, Utc};
use gatehouse_entity::{recovery_codes, totp_credentials};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::identity::totp::{SecondFactor, matching_step, presented_recovery_code};
use crate::{Gatehouse, Result};

impl Gatehouse {
    /// Uses up `code` as a second factor of `user_id`, in `conn` (a write transaction):
    /// six digits are a TOTP code, anything else a recovery code. `None` when it does not
    /// match, or was used before.
    pub(crate) async fn use_second_factor(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        code: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<Option<SecondFactor>> {
        let digits: String = code
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let used = self
                .use_totp_code(conn, user_id, &digits, now, true)
                .await?;
            return Ok(used.then_some(SecondFactor::Totp));
        }
        let Some(hash) = presented_recovery_code(&self.keyed, user_id, code) else {
            return Ok(None);
        };
        let used = recovery_codes::Entity::update_many()
            .col_expr(recovery_codes::Column::UsedAt, Expr::value(now))
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .filter(recovery_codes::Column::CodeHash.eq(hash))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .exec(conn)
            .await?;
        Ok((used.rows_affected == 1).then_some(SecondFactor::RecoveryCode))
    }

    /// Uses up a TOTP `code` of `user_id`'s credential (`confirmed`: the confirmed one, or
    /// else the pending enrolment): it must match a time step after the last one accepted.
    pub(crate) async fn use_totp_code(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
        confirmed: bool,
    ) -> Result<bool> {
        let state = match confirmed {
            true => totp_credentials::Column::ConfirmedAt.is_not_null(),
            false => totp_credentials::Column::ConfirmedAt.is_null(),
        };
        let Some(credential) = totp_credentials::Entity::find_by_id(user_id)
            .filter(state.clone())
            .one(conn)
            .await?
        else {
            return Ok(false);
        };
        let Some(step) =
            matching_step(&self.mfa_key, user_id, &credential.secret_sealed, code, now)?
        else {
            return Ok(false);
        };
        let used = totp_credentials::Entity::update_many()
            .col_expr(totp_credentials::Column::LastUsedStep, Expr::value(step))
            .filter(totp_credentials::Column::UserId.eq(user_id))
            .filter(state)
            .filter(
                Condition::any()
                    .add(totp_credentials::Column::LastUsedStep.is_null())
                    .add(totp_credentials::Column::LastUsedStep.lt(step)),
            )
            .exec(conn)
            .await?;
        Ok(used.rows_affected == 1)
    }
}
