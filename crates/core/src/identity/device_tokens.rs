//! Login device tokens, after OWASP's "device cookies": a client that logged in to an
//! account receives a token naming a `login_devices` row and the account, signed with
//! HMAC-SHA256 under a key derived from the master key. Presented with a later login to
//! the same account, it makes the client judged by its own failed logins instead of the
//! account-wide lock (see [`crate::identity::lockout`]).
//!
//! A token cannot be forged (the signature), cannot be moved to another account (the
//! account is signed into it and compared with the account logged in to), and is
//! revocable: its row is distrusted when the device uses up its own failures or the
//! account's password is reset, and deleted when it expires (`lockout.device_token_ttl`
//! after its last login). Its row holds no secret: the signature key never leaves memory.

use chrono::{DateTime, Utc};
use gatehouse_entity::{login_devices, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use uuid::Uuid;

use crate::platform::secrets::KeyedHashes;
use crate::{Gatehouse, Result};

/// The version prefix of the token format `gd1.<account>.<device>.<signature>`.
const FORMAT: &str = "gd1";
/// Longest token looked at; a real one has 3 + 1 + 32 + 1 + 32 + 1 + 43 = 113 characters.
const MAX_TOKEN_LENGTH: usize = 128;

/// The account and device a token with a valid signature names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignedDevice {
    pub user_id: Uuid,
    pub device_id: Uuid,
}

fn payload(user_id: Uuid, device_id: Uuid) -> String {
    format!("{FORMAT}.{}.{}", user_id.simple(), device_id.simple())
}

/// The token of a device of an account.
pub(crate) fn sign(keyed: &KeyedHashes, user_id: Uuid, device_id: Uuid) -> SecretString {
    let payload = payload(user_id, device_id);
    let signature = keyed.device_token_signature(&payload);
    SecretString::from(format!("{payload}.{signature}"))
}

/// What a token names, if it is well-formed and its signature holds.
pub(crate) fn verify(keyed: &KeyedHashes, token: &str) -> Option<SignedDevice> {
    if token.len() > MAX_TOKEN_LENGTH {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(FORMAT), Some(user), Some(device), Some(signature), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let user_id = Uuid::try_parse(user).ok()?;
    let device_id = Uuid::try_parse(device).ok()?;
    // The payload as signed, so that only one spelling of it is accepted.
    let payload = payload(user_id, device_id);
    (token.len() == payload.len() + 1 + signature.len()
        && token.starts_with(&payload)
        && keyed.device_token_signature_matches(&payload, signature))
    .then_some(SignedDevice { user_id, device_id })
}

impl Gatehouse {
    /// The device row of a presented token, if the token is signed, names `user` (the
    /// account of the address being logged in to), and is neither expired nor distrusted.
    /// Anything else (no token, a forged one, one of another account) is no device.
    pub(crate) async fn trusted_device(
        &self,
        token: Option<&str>,
        user: Option<&users::Model>,
        now: DateTime<Utc>,
    ) -> Result<Option<login_devices::Model>> {
        let (Some(token), Some(user)) = (token, user) else {
            return Ok(None);
        };
        let Some(signed) = verify(&self.keyed, token).filter(|s| s.user_id == user.id) else {
            return Ok(None);
        };
        Ok(login_devices::Entity::find_by_id(signed.device_id)
            .filter(login_devices::Column::UserId.eq(user.id))
            .filter(login_devices::Column::DistrustedAt.is_null())
            .filter(login_devices::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?)
    }

    /// The account key the per-account `login` rate limit counts a login attempt under:
    /// the normalised address, or, for a client presenting a trusted device token of that
    /// address's account, the address and that device. So a stranger hammering an address
    /// uses up the address's quota, not the owner's device's (the same rule the lockout
    /// follows). `None`: an address that does not parse (the login refuses it).
    pub async fn login_rate_key(
        &self,
        raw_email: &str,
        device_token: Option<&str>,
    ) -> Result<Option<String>> {
        let Ok(email) = crate::Email::parse(raw_email) else {
            return Ok(None);
        };
        let Some(signed) = device_token.and_then(|token| verify(&self.keyed, token)) else {
            return Ok(Some(email.as_str().to_owned()));
        };
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?;
        let device = self
            .trusted_device(device_token, user.as_ref(), self.clock.now())
            .await?;
        Ok(Some(match device {
            Some(device) if device.id == signed.device_id => {
                format!("{}#device:{}", email.as_str(), device.id.simple())
            }
            _ => email.as_str().to_owned(),
        }))
    }

    /// How long a device token stays valid after its last login (the cookie's max age).
    pub fn device_token_ttl(&self) -> std::time::Duration {
        self.settings.lockout.device_token_ttl
    }

    fn device_token_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.settings.lockout.device_token_ttl)
            .unwrap_or(chrono::Duration::MAX)
    }

    /// A new device of `user_id` and its token.
    pub(crate) async fn issue_device_token(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<SecretString> {
        let device_id = Uuid::new_v4();
        login_devices::ActiveModel {
            id: Set(device_id),
            user_id: Set(user_id),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(self.device_token_expiry(now)),
            distrusted_at: Set(None),
        }
        .insert(conn)
        .await?;
        Ok(sign(&self.keyed, user_id, device_id))
    }

    /// A login with a device's token succeeded: its validity starts again; the same token.
    pub(crate) async fn renew_device_token(
        &self,
        conn: &impl ConnectionTrait,
        device: &login_devices::Model,
        now: DateTime<Utc>,
    ) -> Result<SecretString> {
        login_devices::ActiveModel {
            id: Set(device.id),
            last_used_at: Set(now),
            expires_at: Set(self.device_token_expiry(now)),
            ..Default::default()
        }
        .update(conn)
        .await?;
        Ok(sign(&self.keyed, device.user_id, device.id))
    }

    /// The device used up its own failures: its token is no longer trusted.
    pub(crate) async fn distrust_device(
        &self,
        conn: &impl ConnectionTrait,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        login_devices::Entity::update_many()
            .col_expr(login_devices::Column::DistrustedAt, Expr::value(now))
            .filter(login_devices::Column::Id.eq(device_id))
            .filter(login_devices::Column::DistrustedAt.is_null())
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Every device token of an account stops being trusted (its password was reset).
    pub(crate) async fn distrust_user_devices(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(login_devices::Entity::update_many()
            .col_expr(login_devices::Column::DistrustedAt, Expr::value(now))
            .filter(login_devices::Column::UserId.eq(user_id))
            .filter(login_devices::Column::DistrustedAt.is_null())
            .exec(conn)
            .await?
            .rows_affected)
    }

    /// Deletes expired devices.
    pub(crate) async fn purge_login_devices(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(login_devices::Entity::delete_many()
            .filter(login_devices::Column::ExpiresAt.lte(now))
            .exec(&self.writer)
            .await?
            .rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::secrets::MasterKey;
    use secrecy::ExposeSecret;

    fn keyed() -> KeyedHashes {
        MasterKey::from_base64(&MasterKey::generate_base64().unwrap())
            .unwrap()
            .keyed_hashes()
    }

    #[test]
    fn a_token_verifies_only_as_signed_and_under_its_key() {
        let keyed = keyed();
        let (user, device) = (Uuid::new_v4(), Uuid::new_v4());
        let token = sign(&keyed, user, device);
        let token = token.expose_secret();
        assert_eq!(
            verify(&keyed, token),
            Some(SignedDevice {
                user_id: user,
                device_id: device
            })
        );
        assert_eq!(verify(&self::keyed(), token), None, "another master key");
        let other_user = token.replace(
            &user.simple().to_string(),
            &Uuid::new_v4().simple().to_string(),
        );
        assert_eq!(
            verify(&keyed, &other_user),
            None,
            "moved to another account"
        );
        let hyphenated = token.replace(&user.simple().to_string(), &user.hyphenated().to_string());
        assert_eq!(verify(&keyed, &hyphenated), None, "another spelling");
        for bad in [
            "",
            "gd1",
            "gd1...",
            &format!("{token}.x"),
            &token[..token.len() - 1],
        ] {
            assert_eq!(verify(&keyed, bad), None, "{bad}");
        }
    }
}
