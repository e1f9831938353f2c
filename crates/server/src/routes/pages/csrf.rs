//! The CSRF check of the hosted pages, as an extractor: a handler that takes a
//! [`CsrfForm`] cannot run on a post without this browser's CSRF token, and every form
//! route is registered with such a handler (see [`super::FORM_POSTS`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::browser::BrowserSession;

/// A form body of type `T` whose `csrf_token` field matched this browser session's
/// token (compared in constant time); `403` otherwise, before anything else is read.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let browser = BrowserSession::from_request(req, &mut Payload::None);
        let fields = web::Form::<Vec<(String, String)>>::from_request(req, payload);
        Box::pin(async move {
            let browser = browser.await?;
            let fields = fields.await?.into_inner();
            let presented = fields
                .iter()
                .find(|(name, _)| name == "csrf_token")
                .map(|(_, value)| value.as_str());
            browser.check_csrf(presented)?;
            // The same fields, now as the form's own type.
            let encoded = serde_urlencoded::to_string(&fields)
                .map_err(|e| crate::error::OAuthError::InvalidRequest(format!("form body: {e}")))?;
            let form = serde_urlencoded::from_str(&encoded)
                .map_err(|e| crate::error::OAuthError::InvalidRequest(format!("form body: {e}")))?;
            Ok(CsrfForm(form))
        })
    }
}
