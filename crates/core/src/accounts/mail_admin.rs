//! What administrators do with the mail outbox: list it, and retry dead mail. Every
//! method checks that the caller is an admin, whatever the HTTP layer did.

use uuid::Uuid;

use crate::accounts::admin::page_size;
use crate::mail::{MailPage, MailQuery, MailView};
use crate::platform::audit::RequestMeta;
use crate::sessions::Principal;
use crate::{Gatehouse, Result};

impl Gatehouse {
    /// Lists queued mail, oldest first, by pages (`?status=pending|sent|dead`):
    /// recipient, kind and delivery state, never the message or its link.
    pub async fn admin_list_mail(&self, admin: &Principal, query: MailQuery) -> Result<MailPage> {
        admin.require_admin()?;
        let limit = page_size(query.limit)?;
        self.list_mail(query, limit).await
    }

    /// Puts a dead mail back in the queue with a fresh set of attempts (audited as
    /// `mail_retried`); `409 mail_not_dead` for a mail that is pending or sent.
    pub async fn admin_retry_mail(
        &self,
        admin: &Principal,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<MailView> {
        // The role as stored now and a recent authentication, like every admin write.
        self.require_admin_now(&self.db, admin).await?;
        self.requeue_dead_mail(admin.user_id, id, meta).await
    }
}
