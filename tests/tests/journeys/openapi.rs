//! The OpenAPI document: served at `/api/v1/openapi.json`, OpenAPI 3.1, and complete:
//! every JSON route the app registers is in it, so an endpoint added without a
//! `#[utoipa::path]` annotation fails here.
//!
//! The routes are read from the source the app is built from: `routes::configure` in
//! `crates/server/src/routes/mod.rs`, followed into each module's `configure` (its
//! `web::scope`s, `.service(handler)` with the handler's `#[get("...")]`-style
//! attribute, and `web::resource("...").route(web::get()...)`). The hosted pages and the
//! browser side of OAuth (`pages`, `authorize`) answer HTML and are not part of it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gatehouse_tests::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::Value;

/// Route modules that answer HTML to browsers, not JSON.
const BROWSER_MODULES: [&str; 2] = ["pages", "authorize"];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_describes_every_json_route() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let document: Value = response.json().await.unwrap();
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "openapi: {version}");

    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| METHODS.contains(&m.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let registered = registered_json_routes();
    assert!(
        registered.len() >= 35,
        "the route scan found too few routes, is it still reading the source right? {registered:#?}"
    );
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without a #[utoipa::path] in crate::openapi: {missing:#?}"
    );
    let unknown: Vec<_> = documented.difference(&registered).collect();
    assert!(
        unknown.is_empty(),
        "documented operations the app does not register: {unknown:#?}"
    );

    // Every operation lists its error responses with their codes, and the schemes it
    // names exist.
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");
    for (method, path) in &documented {
        let operation = &document["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response"
        );
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = response["content"]["application/json"]["schema"].to_string();
                assert!(
                    schema.contains("ErrorBody") && schema.contains("enum"),
                    "{method} {path} {status}: no error codes: {schema}"
                );
            }
        }
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
            }
        }
    }
    // The OAuth endpoints take forms; the bearer endpoints say so.
    let token = &document["paths"]["/oauth2/token"]["post"];
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert_eq!(
        document["paths"]["/api/v1/me"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
}

/// `(method, path)` of every JSON route, read from the source of `routes::configure`.
fn registered_json_routes() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/server/src");
    let mut routes = BTreeSet::new();
    follow(
        &src,
        &src.join("routes/mod.rs"),
        "configure",
        "",
        &mut routes,
    );
    routes
}

/// Walks the function `function` of `file` with the path prefix `prefix`.
fn follow(
    src: &Path,
    file: &Path,
    function: &str,
    prefix: &str,
    routes: &mut BTreeSet<(String, String)>,
) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    let body =
        function_body(&text, function).unwrap_or_else(|| panic!("{file:?}: no fn {function}"));
    // Scopes and resources open at a paren depth and end when the depth drops below it.
    let mut scopes: Vec<(usize, String)> = Vec::new();
    let mut resource: Option<(usize, String)> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        let rest = &body[i..];
        let current = || {
            let mut p = prefix.to_owned();
            for (_, s) in &scopes {
                p.push_str(s);
            }
            p
        };
        if let Some(lit) = literal_after(rest, "web::scope(\"") {
            scopes.push((depth, lit.to_owned()));
        } else if let Some(lit) = literal_after(rest, "web::resource(\"") {
            resource = Some((depth, format!("{}{lit}", current())));
        } else if let Some(target) = ident_after(rest, ".configure(") {
            let (module, function) = target.rsplit_once("::").unwrap();
            let module = module
                .trim_start_matches("crate::routes::")
                .trim_start_matches("super::");
            if !BROWSER_MODULES.contains(&module) {
                follow(src, &module_file(src, module), function, &current(), routes);
            }
        } else if let Some(handler) = ident_after(rest, ".service(") {
            let (method, path) = handler_route(&text, handler)
                .unwrap_or_else(|| panic!("{file:?}: no route attribute on {handler}"));
            routes.insert((method, format!("{}{path}", current())));
        } else if let Some((_, path)) = &resource {
            for method in METHODS {
                if rest.starts_with(&format!("web::{method}()")) {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        match body.as_bytes()[i] {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                scopes.retain(|(d, _)| *d <= depth);
                if resource.as_ref().is_some_and(|(d, _)| *d > depth) {
                    resource = None;
                }
            }
            _ => {}
        }
        i += body[i..].chars().next().map_or(1, char::len_utf8);
    }
}

fn module_file(src: &Path, module: &str) -> PathBuf {
    let module = match module.strip_prefix("crate::") {
        Some(top) => top.to_owned(),
        None => format!("routes/{module}"),
    };
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        file
    } else {
        src.join(format!("{module}/mod.rs"))
    }
}

/// The text of `fn name`'s body (between its braces).
fn function_body<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("fn {name}("))?;
    let open = start + text[start..].find('{')?;
    let mut depth = 0;
    for (offset, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + offset]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The string literal right after `opening` (which ends with `"`).
fn literal_after<'a>(rest: &'a str, opening: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(opening)?;
    after.split_once('"').map(|(lit, _)| lit)
}

/// The path (like `a::b`) right after `opening`, when the call's argument is just that.
fn ident_after<'a>(rest: &'a str, opening: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(opening)?.trim_start();
    let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))?;
    (end > 0 && after[end..].trim_start().starts_with(')')).then(|| &after[..end])
}

/// The method and path of the route attribute (`#[post("/x")]`) on `async fn handler`.
fn handler_route(text: &str, handler: &str) -> Option<(String, String)> {
    let at = text.find(&format!("async fn {handler}("))?;
    let before = &text[..at];
    METHODS
        .iter()
        .filter_map(|method| {
            let attribute = format!("#[{method}(\"");
            let position = before.rfind(&attribute)?;
            let path = literal_after(&before[position..], &attribute)?;
            Some((position, method.to_string(), path.to_owned()))
        })
        .max_by_key(|(position, _, _)| *position)
        .map(|(_, method, path)| (method, path))
}
