//! A browser without a browser: an HTTP client with a cookie jar that walks the hosted
//! pages the way a user would (log in, allow), for the protocol journeys. The real
//! browser journeys use [`crate::browser`].

use reqwest::{Response, StatusCode, Url};

/// An HTTP client with its own cookies that does not follow redirects by itself.
pub struct PageWalker {
    pub http: reqwest::Client,
}

impl Default for PageWalker {
    fn default() -> Self {
        Self::new()
    }
}

/// The value of the hidden `csrf_token` field of a page.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf_token on the page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// The value of a hidden form field of a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field on the page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// Where a redirect goes, resolved against the request URL.
pub fn location(response: &Response) -> Url {
    let value = response
        .headers()
        .get(reqwest::header::LOCATION)
        .unwrap_or_else(|| panic!("{} is not a redirect", response.status()))
        .to_str()
        .expect("ascii location");
    response.url().join(value).expect("valid location")
}

impl PageWalker {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http.get(url).send().await.expect("request")
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(url)
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// GETs a page and returns its CSRF token.
    pub async fn csrf_of(&self, url: &str) -> String {
        let response = self.get(url).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {url}");
        csrf_token(&response.text().await.expect("body"))
    }

    /// Logs in on the hosted login page; returns the response to the form post.
    pub async fn log_in(&self, base: &str, email: &str, password: &str) -> Response {
        let csrf = self.csrf_of(&format!("{base}/login")).await;
        self.post(
            &format!("{base}/login"),
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Follows redirects from `start`, logging in and allowing consent when the pages
    /// ask, until a redirect leaves for `redirect_uri`; returns that URL.
    pub async fn authorize(
        &self,
        start: &str,
        redirect_uri: &str,
        email: &str,
        password: &str,
    ) -> Url {
        let mut response = self.get(start).await;
        for _ in 0..15 {
            if response.status().is_redirection() {
                let next = location(&response);
                if next.as_str().starts_with(redirect_uri) {
                    return next;
                }
                let base = next.origin().ascii_serialization();
                response = match next.path() {
                    "/login" => self.log_in(&base, email, password).await,
                    "/consent" => {
                        let page = self.get(next.as_str()).await;
                        assert_eq!(page.status(), StatusCode::OK, "GET {next}");
                        let html = page.text().await.expect("body");
                        self.post(
                            &format!("{base}/consent"),
                            &[
                                ("csrf_token", &csrf_token(&html)),
                                ("request", &hidden_field(&html, "request")),
                                ("decision", "allow"),
                            ],
                        )
                        .await
                    }
                    _ => self.get(next.as_str()).await,
                };
            } else {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                panic!("the flow stopped at a {status} page:\n{body}");
            }
        }
        panic!("too many redirects");
    }
}
