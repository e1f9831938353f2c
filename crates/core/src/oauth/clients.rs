//! OAuth clients: the apps and services that obtain tokens. Secrets of confidential
//! clients are 256 random bits, shown once at creation, stored as SHA-256 and compared
//! in constant time.
//!
//! Client rows are read through `KnownClients`, the clients read within
//! `read_cache.ttl` (see `crate::platform::read_cache`), so that authenticating a client
//! at the token, introspection and revocation endpoints needs no database round-trip. A
//! change through this instance empties it before answering
//! (`Gatehouse::commit_client_change`); a change made elsewhere (another instance, the
//! CLI) is seen within the TTL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gatehouse_entity::clients;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QueryOrder, Set, SqlErr};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::lists::split;
use crate::platform::read_cache::ReadCache;
use crate::platform::secrets::{constant_time_eq, fill_random, new_token, token_hash};
use crate::sessions::Principal;
use crate::tokens::api_scopes::is_api_scope;
use crate::{Error, Gatehouse, Result};

pub use crate::tokens::audience::API_CLIENT_ID;

/// Recently read clients, by client_id.
pub(crate) type KnownClients = ReadCache<String, Arc<clients::Model>>;

/// Who manages clients: an admin over HTTP, or the operator on the command line.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin(&'a Principal),
    CommandLine,
}

impl Actor<'_> {
    /// [`Actor::authorize`] again inside a write transaction, against the rows as stored
    /// now (see [`Gatehouse::require_admin_now`]).
    async fn authorize_now(self, gatehouse: &Gatehouse, conn: &impl ConnectionTrait) -> Result<()> {
        match self {
            Actor::Admin(principal) => gatehouse.require_admin_now(conn, principal).await,
            Actor::CommandLine => Ok(()),
        }
    }

    /// Checks the right to manage clients; returns the acting user, if any.
    fn authorize(self) -> Result<Option<uuid::Uuid>> {
        match self {
            Actor::Admin(principal) => {
                principal.require_admin()?;
                Ok(Some(principal.user_id))
            }
            Actor::CommandLine => Ok(None),
        }
    }
}

/// Whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    Public,
    Confidential,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Public => "public",
            ClientType::Confidential => "confidential",
        }
    }
}

/// The OAuth grants a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    RefreshToken,
    AuthorizationCode,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            GrantType::ClientCredentials,
            GrantType::RefreshToken,
            GrantType::AuthorizationCode,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// A client to register.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    #[serde(default)]
    pub grant_types: Vec<GrantType>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub first_party: bool,
    /// Where RP-initiated logout may send the user back to.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are posted when a session of the client ends.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Issue a refresh token on every code exchange, not only when `offline_access` is granted.
    #[serde(default)]
    pub always_issue_refresh_token: bool,
}

/// Changes to a client; absent fields stay. `audience: null` clears the audience.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    pub audience: Option<Option<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub always_issue_refresh_token: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from a field left out (`None`).
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A client as the admin API and the CLI show it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub redirect_uris: Vec<String>,
    pub first_party: bool,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub always_issue_refresh_token: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A newly created (or re-keyed) client, with its secret shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientWithSecret {
    #[serde(flatten)]
    pub client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// What a client presented to authenticate.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// An authenticated client: the row it was authenticated against, shared with
/// `KnownClients`.
#[derive(Debug, Clone)]
pub struct Client(pub(crate) Arc<clients::Model>);

impl Client {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub fn is_confidential(&self) -> bool {
        self.0.client_type == ClientType::Confidential.as_str()
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        split(&self.0.grant_types).any(|g| g == grant.as_str())
    }

    pub(crate) fn scopes(&self) -> impl Iterator<Item = &str> {
        split(&self.0.scopes)
    }

    /// The `aud` of the client's service tokens: its audience, else `default`.
    pub(crate) fn audience<'a>(&'a self, default: &'a str) -> &'a str {
        self.0.audience.as_deref().unwrap_or(default)
    }
}

impl From<clients::Model> for ClientView {
    fn from(c: clients::Model) -> Self {
        Self {
            client_type: if c.client_type == "confidential" {
                ClientType::Confidential
            } else {
                ClientType::Public
            },
            grant_types: split(&c.grant_types).filter_map(GrantType::parse).collect(),
            scopes: split(&c.scopes).map(str::to_owned).collect(),
            redirect_uris: split(&c.redirect_uris).map(str::to_owned).collect(),
            post_logout_redirect_uris: split(&c.post_logout_redirect_uris)
                .map(str::to_owned)
                .collect(),
            backchannel_logout_uri: c.backchannel_logout_uri,
            always_issue_refresh_token: c.always_issue_refresh_token,
            client_id: c.id,
            name: c.name,
            audience: c.audience,
            first_party: c.first_party,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Validated, stored form of the client fields.
struct ClientFields {
    name: String,
    grant_types: String,
    scopes: String,
    audience: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: Option<String>,
}

/// The client settings to check, whether new or patched.
struct ClientInput<'a> {
    client_type: ClientType,
    name: &'a str,
    grants: &'a [GrantType],
    scopes: &'a [String],
    audience: Option<&'a str>,
    redirect_uris: &'a [String],
    post_logout_redirect_uris: &'a [String],
    backchannel_logout_uri: Option<&'a str>,
    /// `tokens.default_audience`: the audience of Gatehouse's own API.
    api_audience: &'a str,
}

/// A URL the server sends users or notices to: https, or http on a loopback host; no fragment.
fn check_client_url(field: &str, uri: &str) -> Result<()> {
    let parsed = url::Url::parse(uri).map_err(|_| {
        Error::invalid(
            "invalid_client_metadata",
            format!("{field}: `{uri}` is not an absolute URL"),
        )
    })?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.fragment().is_some()
        || !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
    {
        return Err(Error::invalid(
            "invalid_client_metadata",
            format!("{field}: `{uri}` must be https (or http on localhost) without a fragment"),
        ));
    }
    Ok(())
}

fn validate(input: ClientInput<'_>) -> Result<ClientFields> {
    let ClientInput {
        client_type,
        name,
        grants,
        scopes,
        audience,
        redirect_uris,
        post_logout_redirect_uris,
        backchannel_logout_uri,
        api_audience,
    } = input;
    // Shown on the consent page: NFC-normalised, and no character that could make it
    // read as another name (text-direction overrides, invisible or control characters).
    let name = match crate::identity::types::display_name(name, 200) {
        Ok(name) => name,
        Err(crate::identity::types::NameProblem::HiddenText) => {
            return Err(Error::invalid(
                "invalid_client_metadata",
                "name: no control, invisible or text-direction characters",
            ));
        }
        Err(_) => {
            return Err(Error::invalid(
                "invalid_client_metadata",
                "name: 1 to 200 characters",
            ));
        }
    };
    if client_type == ClientType::Public && grants.contains(&GrantType::ClientCredentials) {
        return Err(Error::invalid(
            "invalid_client_metadata",
            "grant_types: a public client cannot use client_credentials",
        ));
    }
    for scope in scopes {
        // RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(Error::invalid(
                "invalid_client_metadata",
                format!("scopes: `{scope}` is not a valid scope"),
            ));
        }
    }
    if let Some(audience) = audience
        && (audience.trim().is_empty() || audience.chars().count() > 200 || audience.contains(' '))
    {
        return Err(Error::invalid(
            "invalid_client_metadata",
            "audience: 1 to 200 characters, no spaces",
        ));
    }
    // Gatehouse's own API scopes mean something only in tokens for that API.
    if let Some(scope) = scopes.iter().find(|s| is_api_scope(s))
        && audience != Some(api_audience)
    {
        return Err(Error::invalid(
            "invalid_client_metadata",
            format!(
                "scopes: `{scope}` opens Gatehouse's own API; register the client with \
                 audience `{api_audience}` (tokens.default_audience) to grant it"
            ),
        ));
    }
    for uri in redirect_uris {
        check_client_url("redirect_uris", uri)?;
    }
    for uri in post_logout_redirect_uris {
        check_client_url("post_logout_redirect_uris", uri)?;
    }
    if let Some(uri) = backchannel_logout_uri {
        check_client_url("backchannel_logout_uri", uri)?;
    }
    let mut grant_names: Vec<&str> = grants.iter().map(|g| g.as_str()).collect();
    grant_names.dedup();
    Ok(ClientFields {
        name,
        grant_types: grant_names.join(" "),
        scopes: scopes.join(" "),
        audience: audience.map(str::to_owned),
        redirect_uris: redirect_uris.join(" "),
        post_logout_redirect_uris: post_logout_redirect_uris.join(" "),
        backchannel_logout_uri: backchannel_logout_uri.map(str::to_owned),
    })
}

fn new_client_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl Gatehouse {
    /// Creates the built-in client of the JSON API if it does not exist yet.
    pub async fn ensure_api_client(&self) -> Result<()> {
        if clients::Entity::find_by_id(API_CLIENT_ID)
            .one(&self.db)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let now = self.clock.now();
        let inserted = clients::ActiveModel {
            id: Set(API_CLIENT_ID.to_owned()),
            name: Set("Gatehouse JSON API".to_owned()),
            client_type: Set(ClientType::Public.as_str().to_owned()),
            secret_hash: Set(None),
            grant_types: Set(GrantType::RefreshToken.as_str().to_owned()),
            scopes: Set(String::new()),
            audience: Set(None),
            redirect_uris: Set(String::new()),
            first_party: Set(true),
            post_logout_redirect_uris: Set(String::new()),
            backchannel_logout_uri: Set(None),
            always_issue_refresh_token: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // Another instance created it at the same moment.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a client; a confidential one gets a secret, returned this once.
    pub async fn create_client(
        &self,
        actor: Actor<'_>,
        new: NewClient,
        meta: &RequestMeta,
    ) -> Result<ClientWithSecret> {
        let acting = actor.authorize()?;
        let fields = validate(ClientInput {
            client_type: new.client_type,
            name: &new.name,
            grants: &new.grant_types,
            scopes: &new.scopes,
            audience: new.audience.as_deref(),
            redirect_uris: &new.redirect_uris,
            post_logout_redirect_uris: &new.post_logout_redirect_uris,
            backchannel_logout_uri: new.backchannel_logout_uri.as_deref(),
            api_audience: &self.settings.tokens.default_audience,
        })?;
        let secret = (new.client_type == ClientType::Confidential)
            .then(new_token)
            .transpose()?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        actor.authorize_now(self, &txn).await?;
        let client = clients::ActiveModel {
            id: Set(new_client_id()?),
            name: Set(fields.name),
            client_type: Set(new.client_type.as_str().to_owned()),
            secret_hash: Set(secret.as_ref().map(|(_, hash)| hash.clone())),
            grant_types: Set(fields.grant_types),
            scopes: Set(fields.scopes),
            audience: Set(fields.audience),
            redirect_uris: Set(fields.redirect_uris),
            first_party: Set(new.first_party),
            post_logout_redirect_uris: Set(fields.post_logout_redirect_uris),
            backchannel_logout_uri: Set(fields.backchannel_logout_uri),
            always_issue_refresh_token: Set(new.always_issue_refresh_token),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            now,
            meta,
            client_audit(AuditEvent::ClientCreated, acting, &client.id),
        )
        .await?;
        txn.commit().await?;
        Ok(ClientWithSecret {
            client: client.into(),
            client_secret: secret.map(|(s, _)| s.expose_secret().to_owned()),
        })
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self, actor: Actor<'_>) -> Result<Vec<ClientView>> {
        actor.authorize()?;
        let rows = clients::Entity::find()
            .order_by_asc(clients::Column::CreatedAt)
            .order_by_asc(clients::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(ClientView::from).collect())
    }

    /// One client.
    pub async fn get_client(&self, actor: Actor<'_>, client_id: &str) -> Result<ClientView> {
        actor.authorize()?;
        Ok(self.find_client(client_id).await?.into())
    }

    /// Changes a client's settings (not its type or secret).
    pub async fn update_client(
        &self,
        actor: Actor<'_>,
        client_id: &str,
        patch: ClientPatch,
        meta: &RequestMeta,
    ) -> Result<ClientView> {
        let acting = actor.authorize()?;
        refuse_builtin(client_id)?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        actor.authorize_now(self, &txn).await?;
        let current: ClientView = clients::Entity::find_by_id(client_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("client"))?
            .into();
        let fields = validate(ClientInput {
            client_type: current.client_type,
            name: patch.name.as_deref().unwrap_or(&current.name),
            grants: patch.grant_types.as_deref().unwrap_or(&current.grant_types),
            scopes: patch.scopes.as_deref().unwrap_or(&current.scopes),
            audience: match &patch.audience {
                Some(audience) => audience.as_deref(),
                None => current.audience.as_deref(),
            },
            redirect_uris: patch
                .redirect_uris
                .as_deref()
                .unwrap_or(&current.redirect_uris),
            post_logout_redirect_uris: patch
                .post_logout_redirect_uris
                .as_deref()
                .unwrap_or(&current.post_logout_redirect_uris),
            backchannel_logout_uri: match &patch.backchannel_logout_uri {
                Some(uri) => uri.as_deref(),
                None => current.backchannel_logout_uri.as_deref(),
            },
            api_audience: &self.settings.tokens.default_audience,
        })?;
        let updated = clients::ActiveModel {
            id: Set(client_id.to_owned()),
            name: Set(fields.name),
            grant_types: Set(fields.grant_types),
            scopes: Set(fields.scopes),
            audience: Set(fields.audience),
            redirect_uris: Set(fields.redirect_uris),
            first_party: Set(patch.first_party.unwrap_or(current.first_party)),
            post_logout_redirect_uris: Set(fields.post_logout_redirect_uris),
            backchannel_logout_uri: Set(fields.backchannel_logout_uri),
            always_issue_refresh_token: Set(patch
                .always_issue_refresh_token
                .unwrap_or(current.always_issue_refresh_token)),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        audit::record(
            &txn,
            now,
            meta,
            client_audit(AuditEvent::ClientUpdated, acting, client_id),
        )
        .await?;
        self.commit_client_change(txn).await?;
        Ok(updated.into())
    }

    /// Deletes a client; its refresh tokens go with it.
    pub async fn delete_client(
        &self,
        actor: Actor<'_>,
        client_id: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let acting = actor.authorize()?;
        refuse_builtin(client_id)?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        actor.authorize_now(self, &txn).await?;
        let deleted = clients::Entity::delete_by_id(client_id)
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted == 0 {
            return Err(Error::NotFound("client"));
        }
        audit::record(
            &txn,
            now,
            meta,
            client_audit(AuditEvent::ClientDeleted, acting, client_id),
        )
        .await?;
        self.commit_client_change(txn).await?;
        Ok(())
    }

    /// Gives a confidential client a new secret; the old one stops working at once here,
    /// and within `read_cache.ttl` on other instances.
    pub async fn rotate_client_secret(
        &self,
        actor: Actor<'_>,
        client_id: &str,
        meta: &RequestMeta,
    ) -> Result<ClientWithSecret> {
        let acting = actor.authorize()?;
        let client = self.find_client(client_id).await?;
        if client.client_type != ClientType::Confidential.as_str() {
            return Err(Error::invalid(
                "invalid_client_metadata",
                "only confidential clients have a secret",
            ));
        }
        let (secret, hash) = new_token()?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        actor.authorize_now(self, &txn).await?;
        let updated = clients::ActiveModel {
            id: Set(client.id.clone()),
            secret_hash: Set(Some(hash)),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        audit::record(
            &txn,
            now,
            meta,
            client_audit(AuditEvent::ClientSecretRotated, acting, client_id),
        )
        .await?;
        self.commit_client_change(txn).await?;
        Ok(ClientWithSecret {
            client: updated.into(),
            client_secret: Some(secret.expose_secret().to_owned()),
        })
    }

    /// Checks a client's credentials. A confidential client must present its secret; a
    /// public client must not have one to present. Every failure is `InvalidClient`.
    pub async fn authenticate_client(&self, credentials: &ClientCredentials) -> Result<Client> {
        let client = self
            .known_client(credentials.client_id.as_str())
            .await?
            .ok_or(Error::InvalidClient)?;
        match (&client.secret_hash, &credentials.client_secret) {
            (Some(stored), Some(presented)) => {
                let presented = token_hash(presented.expose_secret());
                if !constant_time_eq(stored.as_bytes(), presented.as_bytes()) {
                    return Err(Error::InvalidClient);
                }
            }
            (None, None) => {}
            _ => return Err(Error::InvalidClient),
        }
        Ok(Client(client))
    }

    /// A client's row, from [`KnownClients`] when it was read within `read_cache.ttl`.
    pub(crate) async fn known_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<clients::Model>>> {
        if let Some(client) = self.known_clients.get(client_id) {
            return Ok(Some(client));
        }
        let ticket = self.known_clients.ticket();
        let Some(client) = clients::Entity::find_by_id(client_id).one(&self.db).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.known_clients
            .keep(ticket, client_id.to_owned(), Arc::clone(&client));
        Ok(Some(client))
    }

    /// Commits a change to clients, then empties [`KnownClients`] before the request that
    /// made it answers: a deleted client or a rotated secret stops working here at once.
    async fn commit_client_change(&self, txn: sea_orm::DatabaseTransaction) -> Result<()> {
        // Also when the commit fails (it may have landed) or this future is dropped.
        let _forget = self.known_clients.forget_all_on_drop();
        txn.commit().await?;
        Ok(())
    }

    /// Like [`Self::authenticate_client`], and the client must be confidential.
    pub async fn authenticate_confidential_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Client> {
        let client = self.authenticate_client(credentials).await?;
        if client.is_confidential() {
            Ok(client)
        } else {
            Err(Error::InvalidClient)
        }
    }

    pub(crate) async fn find_client(&self, client_id: &str) -> Result<clients::Model> {
        clients::Entity::find_by_id(client_id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("client"))
    }

    pub(crate) async fn client_exists(&self, client_id: &str) -> Result<bool> {
        Ok(self.known_client(client_id).await?.is_some())
    }
}

fn refuse_builtin(client_id: &str) -> Result<()> {
    if client_id == API_CLIENT_ID {
        return Err(Error::Conflict {
            code: "builtin_client",
            message: "the built-in client of the JSON API cannot be changed or deleted".to_owned(),
        });
    }
    Ok(())
}

fn client_audit(event: AuditEvent, actor: Option<uuid::Uuid>, client_id: &str) -> AuditEntry {
    AuditEntry {
        event,
        actor,
        subject: None,
        session: None,
        details: Some(serde_json::json!({ "client_id": client_id })),
    }
}

impl Gatehouse {
    /// Every scope some client may ask for, sorted, for the discovery document.
    pub async fn registered_scopes(&self) -> Result<Vec<String>> {
        let mut scopes: Vec<String> = clients::Entity::find()
            .all(&self.db)
            .await?
            .iter()
            .flat_map(|c| split(&c.scopes).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }
}
