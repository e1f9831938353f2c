//! [`Verifier`] and its [`VerifierBuilder`]: configuration, discovery, the key cache and the
//! checks every token goes through.

use std::fmt;
use std::str::FromStr as _;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::claims::{Claims, Introspection};
use crate::credentials::Credentials;
use crate::error::{self, VerifyError};
use crate::keys::KeyStore;
use crate::revocation::{RevocationList, RevocationPage, RevocationWatcher};

/// The algorithms accepted unless [`VerifierBuilder::algorithms`] says otherwise.
///
/// ```
/// use gatehouse_verify::{Algorithm, DEFAULT_ALGORITHMS};
/// assert!(DEFAULT_ALGORITHMS.contains(&Algorithm::EdDSA));
/// ```
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// Clock skew tolerated on `exp` and `nbf` unless [`VerifierBuilder::leeway`] says otherwise.
///
/// ```
/// assert_eq!(gatehouse_verify::DEFAULT_LEEWAY.as_secs(), 30);
/// ```
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Shortest time between two key-set fetches triggered by unknown `kid`s, unless
/// [`VerifierBuilder::min_refetch_interval`] says otherwise.
///
/// ```
/// assert_eq!(gatehouse_verify::DEFAULT_MIN_REFETCH_INTERVAL.as_secs(), 5);
/// ```
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// The header `typ` required unless [`VerifierBuilder::required_type`] says otherwise
/// (RFC 9068 access tokens).
///
/// ```
/// assert_eq!(gatehouse_verify::DEFAULT_TOKEN_TYPE, "at+jwt");
/// ```
pub const DEFAULT_TOKEN_TYPE: &str = "at+jwt";

/// Time limit for each discovery, key-set, introspection or revocation-list request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer strings are refused before any parsing: no Gatehouse token comes near this.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// A revocation-list sync stops after this many pages even if the issuer offers more.
const MAX_REVOCATION_PAGES: usize = 1000;

/// Verifies Gatehouse access tokens.
///
/// Cheap to clone (an `Arc` inside): build one at startup and share it, e.g. as
/// `web::Data<Verifier>`. See the [crate docs](crate) for the model.
///
/// ```no_run
/// use gatehouse_verify::Verifier;
///
/// # async fn run(token: &str) -> Result<(), gatehouse_verify::VerifyError> {
/// let verifier = Verifier::builder("https://id.example.com")
///     .audience("notes-api")
///     .discover()
///     .await?;
/// let claims = verifier.verify(token).await?;
/// println!("{} may {:?}", claims.sub, claims.scope);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// Where a [`Verifier`] takes the current time from, in Unix seconds. The system clock
/// unless [`VerifierBuilder::clock`] sets another (tests and simulations that move time).
#[derive(Clone)]
pub struct UnixClock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl UnixClock {
    /// A clock that asks `now` for the current Unix time in seconds.
    ///
    /// ```
    /// let fixed = gatehouse_verify::UnixClock::new(|| 1_900_000_000);
    /// ```
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn now(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for UnixClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnixClock(..)")
    }
}

impl Default for UnixClock {
    fn default() -> Self {
        Self::new(now_unix)
    }
}

struct Inner {
    /// The configured issuer with one trailing slash removed: the base of every URL we build.
    base_url: String,
    /// `iss` values accepted: the configured issuer and the discovery document's spelling.
    accepted_issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    /// One prepared `Validation` per allowed algorithm; built once, not per token.
    validations: Vec<(Algorithm, Validation)>,
    leeway: i64,
    clock: UnixClock,
    required_type: Option<String>,
    min_refetch_interval: Duration,
    http: reqwest::Client,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
    introspection: Option<Credentials>,
    keys: RwLock<Arc<KeyStore>>,
    /// When the key set was last fetched (or a fetch attempted); also serialises refetches.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    revocations: RevocationList,
}

impl Verifier {
    /// Starts configuring a verifier for tokens issued by `issuer` (e.g.
    /// `https://id.example.com`).
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .audience("notes-api");
    /// ```
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into())
    }

    /// Verifies `token` against the cached keys; when its `kid` is unknown, refetches the key
    /// set (at most once per [`VerifierBuilder::min_refetch_interval`]) and tries once more.
    ///
    /// Checks, in order: size and shape, `alg` in the allow-list, `typ`, `kid` known, the key's
    /// own algorithm equals `alg`, signature, `iss`, `aud`, `exp` and `nbf` (with leeway), and
    /// that the `sid` session is not revoked.
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier, token: &str) {
    /// match verifier.verify(token).await {
    ///     Ok(claims) => println!("hello {}", claims.sub),
    ///     Err(err) if err.is_token_error() => println!("401: {err}"),
    ///     Err(err) => println!("503: {err}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// The reason the token was refused, or [`VerifyError::Fetch`] when the key set had to be
    /// refetched and could not be.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = self.check_header(token)?;
        match self.verify_with_keys(token, &header, &self.keys()) {
            Err(VerifyError::UnknownKey) => {}
            done => return done,
        }
        self.refetch_keys(false).await?;
        self.verify_with_keys(token, &header, &self.keys())
    }

    /// Like [`Verifier::verify`] but never touches the network: an unknown `kid` is simply
    /// [`VerifyError::UnknownKey`]. For hot paths and benchmarks.
    ///
    /// ```no_run
    /// # fn run(verifier: gatehouse_verify::Verifier, token: &str) {
    /// let claims = verifier.verify_cached(token);
    /// # }
    /// ```
    ///
    /// # Errors
    /// The reason the token was refused.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = self.check_header(token)?;
        self.verify_with_keys(token, &header, &self.keys())
    }

    /// Asks the issuer's introspection endpoint (RFC 7662) about `token`, authenticating with
    /// the credentials given to [`VerifierBuilder::introspection`]. Returns the answer as is,
    /// whether active or not.
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier, token: &str) -> Result<(), gatehouse_verify::VerifyError> {
    /// let answer = verifier.introspect(token).await?;
    /// println!("active: {}", answer.active);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`VerifyError::Config`] when introspection is not configured or the issuer publishes no
    /// endpoint, [`VerifyError::Fetch`] when the request fails or the answer is not a `2xx`
    /// with a JSON introspection object.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, VerifyError> {
        let credentials = self
            .inner
            .introspection
            .as_ref()
            .ok_or_else(|| VerifyError::Config("introspection is not configured".into()))?;
        let endpoint = self
            .inner
            .introspection_endpoint
            .as_deref()
            .ok_or_else(|| {
                VerifyError::Config("the issuer publishes no introspection endpoint".into())
            })?;
        let request = self
            .inner
            .http
            .post(endpoint)
            .header(AUTHORIZATION, credentials.header()?)
            .header(ACCEPT, "application/json")
            .form(&[("token", token)]);
        send_json(request, endpoint).await
    }

    /// Verifies locally like [`Verifier::verify`]; when the key stays unknown after a refetch,
    /// or the key set cannot be fetched, asks introspection instead and accepts only an
    /// `"active": true` answer whose `iss` and `aud` match (and whose lifetime and session
    /// pass the same checks as a local verification).
    ///
    /// Without [`VerifierBuilder::introspection`] this is just [`Verifier::verify`].
    /// Note that every token with an unknown `kid` then costs one request to the issuer.
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier, token: &str) -> Result<(), gatehouse_verify::VerifyError> {
    /// let claims = verifier.verify_or_introspect(token).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The local reason for refusal, [`VerifyError::Inactive`] when introspection says no, or
    /// the introspection request's own error.
    pub async fn verify_or_introspect(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.verify(token).await {
            Err(VerifyError::UnknownKey | VerifyError::Fetch(_))
                if self.inner.introspection.is_some() => {}
            done => return done,
        }
        let claims = self.introspect(token).await?.into_claims()?;
        self.check_claims(&claims, self.inner.clock.now())?;
        Ok(claims)
    }

    /// Fetches the key set now, whatever the refetch interval says, and replaces the cache.
    /// Call it on a timer if keys withdrawn by the issuer must stop working before a token
    /// with an unknown `kid` triggers a refetch.
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier) -> Result<(), gatehouse_verify::VerifyError> {
    /// verifier.refresh_keys().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`VerifyError::Config`] for a verifier built from a static key set,
    /// [`VerifyError::Fetch`] when the fetch fails (the cache is then kept).
    pub async fn refresh_keys(&self) -> Result<(), VerifyError> {
        if self.inner.jwks_uri.is_none() {
            return Err(VerifyError::Config(
                "this verifier was built from a static key set".into(),
            ));
        }
        self.refetch_keys(true).await
    }

    /// Refuses every token whose `sid` is `sid` until `until_unix` (unix seconds, plus the
    /// leeway, since expiry is only enforced with that leeway). The
    /// [`RevocationWatcher`] calls this for each feed entry; apps may call it too, e.g. on
    /// a back-channel logout. Entries are dropped once they no longer matter.
    ///
    /// ```
    /// # let verifier = gatehouse_verify::Verifier::builder("https://id.example.com")
    /// #     .audience("notes-api")
    /// #     .build_with_jwks(gatehouse_verify::JwkSet { keys: vec![] }).unwrap();
    /// let sid = "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f";
    /// verifier.revoke_session_locally(sid, 4_000_000_000);
    /// assert!(verifier.is_session_revoked(sid));
    /// ```
    pub fn revoke_session_locally(&self, sid: &str, until_unix: i64) {
        self.inner
            .revocations
            .insert(sid, until_unix, self.inner.clock.now(), self.inner.leeway);
    }

    /// Whether tokens of session `sid` are currently refused because it was revoked.
    ///
    /// ```
    /// # let verifier = gatehouse_verify::Verifier::builder("https://id.example.com")
    /// #     .audience("notes-api")
    /// #     .build_with_jwks(gatehouse_verify::JwkSet { keys: vec![] }).unwrap();
    /// assert!(!verifier.is_session_revoked("0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f"));
    /// ```
    #[must_use]
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        self.inner
            .revocations
            .is_revoked(sid, self.inner.clock.now(), self.inner.leeway)
    }

    /// How many revoked sessions are currently remembered.
    ///
    /// ```
    /// # let verifier = gatehouse_verify::Verifier::builder("https://id.example.com")
    /// #     .audience("notes-api")
    /// #     .build_with_jwks(gatehouse_verify::JwkSet { keys: vec![] }).unwrap();
    /// assert_eq!(verifier.revoked_session_count(), 0);
    /// ```
    #[must_use]
    pub fn revoked_session_count(&self) -> usize {
        self.inner
            .revocations
            .len(self.inner.clock.now(), self.inner.leeway)
    }

    /// Follows the issuer's revocation feed (`GET {issuer}/api/v1/revocations` as Server-Sent
    /// Events, HTTP Basic auth with this client's credentials) in a background task, recording
    /// each revoked session here. Keep the returned watcher alive as long as the feed should
    /// be followed.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns a task).
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier) {
    /// let watcher = verifier.watch_revocations("notes-api", "client-secret");
    /// watcher.wait_connected().await;
    /// # }
    /// ```
    pub fn watch_revocations(
        &self,
        client_id: impl AsRef<str>,
        client_secret: impl AsRef<str>,
    ) -> RevocationWatcher {
        let credentials = Credentials::new(client_id.as_ref(), client_secret.as_ref());
        RevocationWatcher::spawn(self.clone(), credentials)
    }

    /// Reads the JSON form of the revocation feed (`GET {issuer}/api/v1/revocations?after=N`),
    /// page by page while the issuer returns a `next_cursor`, and records every entry. For
    /// apps that prefer polling to [`Verifier::watch_revocations`]: pass the value this
    /// returned last time as `after` (`None` the first time).
    ///
    /// ```no_run
    /// # async fn run(verifier: gatehouse_verify::Verifier) -> Result<(), gatehouse_verify::VerifyError> {
    /// let mut cursor = None;
    /// loop {
    ///     cursor = verifier.sync_revocations("notes-api", "client-secret", cursor).await?;
    ///     tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`VerifyError::Fetch`] when a request fails or an answer is unreadable; entries read
    /// before that are kept.
    pub async fn sync_revocations(
        &self,
        client_id: &str,
        client_secret: &str,
        after: Option<u64>,
    ) -> Result<Option<u64>, VerifyError> {
        let credentials = Credentials::new(client_id, client_secret);
        let base = self.revocations_url();
        let mut cursor = after;
        for _ in 0..MAX_REVOCATION_PAGES {
            let url = match cursor {
                Some(after) => format!("{base}?after={after}"),
                None => base.clone(),
            };
            let request = self
                .inner
                .http
                .get(&url)
                .header(AUTHORIZATION, credentials.header()?)
                .header(ACCEPT, "application/json");
            let page: RevocationPage = send_json(request, &url).await?;
            let before = cursor;
            for entry in &page.revocations {
                self.revoke_session_locally(&entry.session_id, entry.tokens_expire_at);
                cursor = cursor.max(Some(entry.id));
            }
            match page.next_cursor {
                Some(next) if !page.revocations.is_empty() && Some(next) > before => {
                    cursor = cursor.max(Some(next));
                }
                _ => return Ok(cursor),
            }
        }
        Ok(cursor)
    }

    /// The issuer as configured.
    ///
    /// ```
    /// # let verifier = gatehouse_verify::Verifier::builder("https://id.example.com/")
    /// #     .audience("notes-api")
    /// #     .build_with_jwks(gatehouse_verify::JwkSet { keys: vec![] }).unwrap();
    /// assert_eq!(verifier.issuer(), "https://id.example.com/");
    /// ```
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.inner
            .accepted_issuers
            .first()
            .map_or(&self.inner.base_url, String::as_str)
    }

    /// The `kid`s of the keys currently trusted, sorted.
    ///
    /// ```
    /// # let verifier = gatehouse_verify::Verifier::builder("https://id.example.com")
    /// #     .audience("notes-api")
    /// #     .build_with_jwks(gatehouse_verify::JwkSet { keys: vec![] }).unwrap();
    /// assert!(verifier.key_ids().is_empty());
    /// ```
    #[must_use]
    pub fn key_ids(&self) -> Vec<String> {
        let keys = self.keys();
        let mut kids: Vec<String> = keys.kids().map(str::to_owned).collect();
        kids.sort_unstable();
        kids
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn revocations_url(&self) -> String {
        format!("{}/api/v1/revocations", self.inner.base_url)
    }

    fn keys(&self) -> Arc<KeyStore> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Everything that can be checked before choosing a key.
    fn check_header(&self, token: &str) -> Result<TokenHeader, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Malformed)?;
        let header: RawHeader =
            serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: we understand no extension, so we must refuse the token.
            return Err(VerifyError::Malformed);
        }
        // `none`, HMAC and unknown names all end here.
        let alg = Algorithm::from_str(&header.alg).map_err(|_| VerifyError::AlgorithmNotAllowed)?;
        if !self.inner.algorithms.contains(&alg) {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        if let Some(required) = self.inner.required_type.as_deref()
            && !header
                .typ
                .as_deref()
                .is_some_and(|typ| type_matches(typ, required))
        {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.ok_or(VerifyError::Malformed)?;
        Ok(TokenHeader { alg, kid })
    }

    fn verify_with_keys(
        &self,
        token: &str,
        header: &TokenHeader,
        keys: &KeyStore,
    ) -> Result<Claims, VerifyError> {
        let key = keys.get(&header.kid).ok_or(VerifyError::UnknownKey)?;
        // The key decides the algorithm, never the token: this is what blocks algorithm
        // confusion (an RSA key used as an HMAC secret, an EC key with another curve, ...).
        if key.alg != header.alg {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        let validation = self
            .inner
            .validations
            .iter()
            .find_map(|(alg, validation)| (*alg == key.alg).then_some(validation))
            .ok_or(VerifyError::AlgorithmNotAllowed)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map_err(|e| error::from_jwt(&e))?;
        self.check_claims(&data.claims, self.inner.clock.now())?;
        Ok(data.claims)
    }

    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), VerifyError> {
        let inner = &self.inner;
        if !inner.accepted_issuers.contains(&claims.iss) {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims.aud.iter().any(|aud| inner.audiences.contains(aud)) {
            return Err(VerifyError::WrongAudience);
        }
        if now >= claims.exp.saturating_add(inner.leeway) {
            return Err(VerifyError::Expired);
        }
        if claims.nbf > now.saturating_add(inner.leeway) {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(sid) = &claims.sid
            && inner.revocations.is_revoked(sid, now, inner.leeway)
        {
            return Err(VerifyError::Revoked);
        }
        Ok(())
    }

    /// Refetches the key set unless one was fetched (or tried) within the minimum interval;
    /// `force` ignores the interval. Concurrent callers wait for one fetch instead of each
    /// making their own.
    async fn refetch_keys(&self, force: bool) -> Result<(), VerifyError> {
        let Some(jwks_uri) = self.inner.jwks_uri.as_deref() else {
            return Ok(());
        };
        let mut last_fetch = self.inner.last_fetch.lock().await;
        if !force && last_fetch.is_some_and(|at| at.elapsed() < self.inner.min_refetch_interval) {
            return Ok(());
        }
        *last_fetch = Some(Instant::now());
        let keys = fetch_keys(&self.inner.http, jwks_uri, &self.inner.algorithms).await?;
        tracing::debug!(keys = keys.len(), "refetched the issuer's key set");
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer())
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("keys", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Verifier`]; made by [`Verifier::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use gatehouse_verify::{Algorithm, Verifier};
///
/// # async fn run() -> Result<(), gatehouse_verify::VerifyError> {
/// let verifier = Verifier::builder("https://id.example.com")
///     .audience("notes-api")
///     .algorithms([Algorithm::EdDSA, Algorithm::ES256])
///     .leeway(Duration::from_secs(10))
///     .introspection("notes-api", "client-secret")
///     .discover()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    clock: UnixClock,
    required_type: Option<String>,
    min_refetch_interval: Duration,
    http: Option<reqwest::Client>,
    introspection: Option<Credentials>,
    introspection_endpoint: Option<String>,
}

impl VerifierBuilder {
    fn new(issuer: String) -> Self {
        Self {
            issuer,
            audiences: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            clock: UnixClock::default(),
            required_type: Some(DEFAULT_TOKEN_TYPE.to_owned()),
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            http: None,
            introspection: None,
            introspection_endpoint: None,
        }
    }

    /// Accepts tokens whose `aud` contains `audience`. Call once per accepted audience; at
    /// least one is required.
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .audience("notes-api")
    ///     .audience("notes-admin-api");
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts each of `audiences` (added to those already given).
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .audiences(["notes-api", "notes-admin-api"]);
    /// ```
    pub fn audiences<I>(mut self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Replaces the allow-list of signature algorithms (default: RS256, ES256, EdDSA).
    /// HMAC algorithms are refused when building: a verifier must never accept a token signed
    /// with a shared secret. (`none` has no [`Algorithm`] value at all.)
    ///
    /// ```
    /// use gatehouse_verify::{Algorithm, Verifier};
    ///
    /// let builder = Verifier::builder("https://id.example.com").algorithms([Algorithm::EdDSA]);
    /// ```
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s; whole seconds count).
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .leeway(std::time::Duration::from_secs(5));
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Where the current time comes from for `exp`, `nbf` and revocation expiry (default:
    /// the system clock).
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .clock(gatehouse_verify::UnixClock::new(|| 1_900_000_000));
    /// ```
    pub fn clock(mut self, clock: UnixClock) -> Self {
        self.clock = clock;
        self
    }

    /// The header `typ` tokens must carry, compared case-insensitively, with or without the
    /// `application/` prefix (default `Some("at+jwt")`); `None` skips the check.
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .required_type(None);
    /// ```
    pub fn required_type(mut self, required_type: Option<&str>) -> Self {
        self.required_type = required_type.map(str::to_owned);
        self
    }

    /// Shortest time between two key-set fetches triggered by unknown `kid`s (default 5 s).
    /// The fetch made by [`VerifierBuilder::discover`] counts as the first.
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .min_refetch_interval(std::time::Duration::from_secs(30));
    /// ```
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// The HTTP client for every request to the issuer (default: a fresh `reqwest::Client`).
    /// Each request gets a 10 s time limit; the revocation feed's response headers too.
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .http_client(reqwest::Client::new());
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Enables [`Verifier::introspect`] and the fallback of [`Verifier::verify_or_introspect`],
    /// authenticating as this client.
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .introspection("notes-api", "client-secret");
    /// ```
    pub fn introspection(
        mut self,
        client_id: impl AsRef<str>,
        client_secret: impl AsRef<str>,
    ) -> Self {
        self.introspection = Some(Credentials::new(client_id.as_ref(), client_secret.as_ref()));
        self
    }

    /// Uses this introspection endpoint instead of the one the discovery document names
    /// (needed with [`VerifierBuilder::build_with_jwks`], which fetches no document).
    ///
    /// ```
    /// let builder = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .introspection_endpoint("https://id.example.com/oauth2/introspect");
    /// ```
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// Fetches `{issuer}/.well-known/openid-configuration`, checks that its `issuer` is the
    /// configured one (one trailing slash aside), fetches its `jwks_uri`, and builds the
    /// verifier. Unknown `kid`s later refetch that key set.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), gatehouse_verify::VerifyError> {
    /// let verifier = gatehouse_verify::Verifier::builder("https://id.example.com")
    ///     .audience("notes-api")
    ///     .discover()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`VerifyError::Config`] for an invalid configuration or an issuer mismatch,
    /// [`VerifyError::Fetch`] when the document or the key set cannot be fetched or read.
    pub async fn discover(self) -> Result<Verifier, VerifyError> {
        self.check()?;
        let http = self.client()?;
        let base_url = strip_one_slash(&self.issuer).to_owned();
        let url = format!("{base_url}/.well-known/openid-configuration");
        let document: Discovery = send_json(http.get(&url), &url).await?;
        if strip_one_slash(&document.issuer) != base_url {
            return Err(VerifyError::Config(format!(
                "the discovery document names issuer {:?}, expected {:?}",
                document.issuer, self.issuer
            )));
        }
        let fetched_at = Instant::now();
        let keys = fetch_keys(&http, &document.jwks_uri, &self.algorithms).await?;
        let introspection_endpoint = self
            .introspection_endpoint
            .clone()
            .or(document.introspection_endpoint);
        Ok(self.finish(
            http,
            keys,
            Some(document.jwks_uri),
            Some(fetched_at),
            Some(document.issuer),
            introspection_endpoint,
        ))
    }

    /// Builds a verifier that trusts exactly the keys of `jwks` and fetches no keys
    /// (an unknown `kid` is refused at once). For tests, benchmarks and air-gapped setups.
    ///
    /// ```
    /// use gatehouse_verify::{JwkSet, Verifier};
    ///
    /// let jwks: JwkSet = serde_json::from_str(r#"{"keys": []}"#)?;
    /// let verifier = Verifier::builder("https://id.example.com")
    ///     .audience("notes-api")
    ///     .build_with_jwks(jwks)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`VerifyError::Config`] for an invalid configuration.
    pub fn build_with_jwks(self, jwks: JwkSet) -> Result<Verifier, VerifyError> {
        self.check()?;
        let http = self.client()?;
        let keys = KeyStore::from_set(&jwks, &self.algorithms);
        let introspection_endpoint = self.introspection_endpoint.clone();
        Ok(self.finish(http, keys, None, None, None, introspection_endpoint))
    }

    fn check(&self) -> Result<(), VerifyError> {
        if self.issuer.trim().is_empty() {
            return Err(VerifyError::Config("the issuer is empty".into()));
        }
        if self.audiences.is_empty() {
            return Err(VerifyError::Config(
                "at least one audience is required".into(),
            ));
        }
        if self.algorithms.is_empty() {
            return Err(VerifyError::Config(
                "at least one algorithm must be allowed".into(),
            ));
        }
        if let Some(hmac) = self
            .algorithms
            .iter()
            .find(|alg| matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(VerifyError::Config(format!(
                "{hmac:?} can never be allowed: a shared-secret algorithm lets anyone holding \
                 the key mint tokens"
            )));
        }
        Ok(())
    }

    fn client(&self) -> Result<reqwest::Client, VerifyError> {
        match &self.http {
            Some(client) => Ok(client.clone()),
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| VerifyError::Config(format!("cannot build an HTTP client: {e}"))),
        }
    }

    fn finish(
        mut self,
        http: reqwest::Client,
        keys: KeyStore,
        jwks_uri: Option<String>,
        fetched_at: Option<Instant>,
        discovered_issuer: Option<String>,
        introspection_endpoint: Option<String>,
    ) -> Verifier {
        self.algorithms = unique(self.algorithms);
        let validations = self
            .algorithms
            .iter()
            .map(|&alg| {
                // Only the signature is left to jsonwebtoken; the claims are checked by us so
                // every refusal has its own reason.
                let mut validation = Validation::new(alg);
                validation.required_spec_claims.clear();
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.validate_aud = false;
                validation.leeway = 0;
                (alg, validation)
            })
            .collect();
        let base_url = strip_one_slash(&self.issuer).to_owned();
        let mut accepted_issuers = vec![self.issuer];
        if let Some(issuer) = discovered_issuer
            && !accepted_issuers.contains(&issuer)
        {
            accepted_issuers.push(issuer);
        }
        let audiences = unique(self.audiences);
        Verifier {
            inner: Arc::new(Inner {
                base_url,
                accepted_issuers,
                audiences,
                algorithms: self.algorithms,
                validations,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                clock: self.clock,
                required_type: self.required_type,
                min_refetch_interval: self.min_refetch_interval,
                http,
                jwks_uri,
                introspection_endpoint,
                introspection: self.introspection,
                keys: RwLock::new(Arc::new(keys)),
                last_fetch: tokio::sync::Mutex::new(fetched_at),
                revocations: RevocationList::default(),
            }),
        }
    }
}

/// The parts of the JOSE header we look at.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

struct TokenHeader {
    alg: Algorithm,
    kid: String,
}

/// The members of the discovery document we use.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

/// `at+jwt` matches `AT+JWT` and `application/at+jwt` (RFC 7515 §4.1.9 lets the prefix go).
fn type_matches(typ: &str, required: &str) -> bool {
    const PREFIX: &str = "application/";
    let bare = match typ.get(..PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(required) || typ.eq_ignore_ascii_case(required)
}

fn unique<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut unique = Vec::with_capacity(items.len());
    for item in items {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    unique
}

fn strip_one_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

#[expect(
    clippy::disallowed_methods,
    reason = "gatehouse-verify's own clock: it runs in app backends, without gatehouse-core's Clock"
)]
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn fetch_keys(
    http: &reqwest::Client,
    jwks_uri: &str,
    algorithms: &[Algorithm],
) -> Result<KeyStore, VerifyError> {
    let body = send(
        http.get(jwks_uri).header(ACCEPT, "application/json"),
        jwks_uri,
    )
    .await?;
    KeyStore::from_json(&body, algorithms)
        .map_err(|e| VerifyError::Fetch(format!("{jwks_uri}: {e}")))
}

/// Sends `request` with the time limit, insists on a `2xx`, returns the body.
async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<Vec<u8>, VerifyError> {
    let fail = |what: String| VerifyError::Fetch(format!("{url}: {what}"));
    let response = request
        .timeout(HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the issuer answered {status}")));
    }
    let body = response.bytes().await.map_err(|e| fail(e.to_string()))?;
    Ok(body.to_vec())
}

async fn send_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<T, VerifyError> {
    let body = send(request, url).await?;
    serde_json::from_slice(&body)
        .map_err(|e| VerifyError::Fetch(format!("{url}: unreadable answer: {e}")))
}
