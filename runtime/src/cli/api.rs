//! A small client of hookd's Management API for the admin commands: gets a token with the
//! admin credentials (from `DATA_DIR/admin.json`, flags or the environment), then sends JSON or
//! module uploads and turns error answers into one-line reasons.

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;

use hookd::proto::{FollowLine, HookView, TokenAnswer, UploadedView};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AdminArgs;

/// The CLI's HTTP client: plain HTTP, or HTTPS verified against the system's roots plus the
/// CA certificates of `--cacert`.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An authenticated Management API session.
pub struct ManagementClient {
    server: String,
    token: String,
    http: HttpClient,
}

/// The HTTP client for `server`, trusting the system's CA certificates and those in `cacert`.
fn http_client(cacert: Option<&std::path::Path>) -> anyhow::Result<HttpClient> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    // Certificates of the system's store that rustls cannot use are skipped, as curl does.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = cacert {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("could not read CA certificates from {}", path.display()))?;
        if certificates.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .with_context(|| format!("a certificate in {} is not usable", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS setup")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// The first line of standard input, without its line ending.
fn secret_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("could not read the admin client secret from standard input")?;
    let secret = line.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("standard input held no admin client secret");
    }
    Ok(secret)
}

async fn send(
    http: &HttpClient,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Value)> {
    let uri = request.uri().clone();
    let response = http.request(request).await.map_err(|error| {
        // The connector's cause (a certificate the roots do not vouch for, say) is what
        // the operator needs; hyper's own message only says the connection failed.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        anyhow!("could not reach {uri}: {reason}")
    })?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok((status, value))
}

/// The reason an error answer gives, in one line.
fn reason(status: u16, body: &Value) -> anyhow::Error {
    let message = body
        .get("message")
        .or_else(|| body.get("error_description"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    anyhow!("{message} (HTTP {status})")
}

impl ManagementClient {
    /// Logs in with the admin credentials.
    pub async fn connect(args: &AdminArgs) -> anyhow::Result<Self> {
        let server = args.server.trim_end_matches('/').to_owned();
        let http = http_client(args.cacert.as_deref())?;
        let saved: Option<Value> = std::fs::read_to_string(args.data_dir.join("admin.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let from_file = |field: &str| {
            saved
                .as_ref()
                .and_then(|s| s.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let client_id = args
            .admin_client_id
            .clone()
            .or_else(|| from_file("client_id"))
            .ok_or_else(|| {
                anyhow!(
                    "no admin credentials: pass --admin-client-id and --admin-client-secret (or \
                 HOOKD_ADMIN_CLIENT_ID and HOOKD_ADMIN_CLIENT_SECRET), or --data-dir pointing at \
                 the server's data directory"
                )
            })?;
        let from_stdin = if args.admin_client_secret_stdin {
            Some(secret_from_stdin()?)
        } else {
            None
        };
        let client_secret = from_stdin
            .or_else(|| args.admin_client_secret.clone())
            .or_else(|| from_file("client_secret"))
            .ok_or_else(|| anyhow!("no admin client secret: pass --admin-client-secret"))?;
        let audience = match from_file("audience") {
            Some(audience) => audience,
            None => {
                let request =
                    http::Request::get(format!("{server}/.well-known/openid-configuration"))
                        .body(Full::default())?;
                let (status, metadata) = send(&http, request).await?;
                if status != 200 {
                    bail!("{server} did not answer discovery (HTTP {status})");
                }
                let issuer = metadata["issuer"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no issuer"))?;
                format!("{issuer}api/v2/")
            }
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &client_id)
            .append_pair("client_secret", &client_secret)
            .append_pair("audience", &audience)
            .finish();
        let request = http::Request::post(format!("{server}/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        let (status, answer) = send(&http, request).await?;
        if status != 200 {
            return Err(reason(status, &answer).context("could not log in to the Management API"));
        }
        let token = typed::<TokenAnswer>("the token request", answer)?.access_token;
        Ok(ManagementClient {
            server,
            token,
            http,
        })
    }

    /// A JSON call answered with a `T`; `Err` carries the server's one-line reason.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<T> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}/api/v2/{path}", self.server))
            .header("authorization", format!("Bearer {}", self.token));
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(serde_json::to_vec(body)?))
            }
            None => Full::default(),
        };
        let (status, answer) = send(&self.http, request.body(body)?).await?;
        if status >= 300 {
            return Err(reason(status, &answer));
        }
        typed(path, answer)
    }

    /// A call answered with no content (a delete).
    pub async fn delete(
        &self,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<()> {
        let _: Value = self.call(Method::DELETE, path, body).await?;
        Ok(())
    }

    /// Uploads a module as a hook's new version.
    pub async fn upload(&self, hook_id: &str, module: Vec<u8>) -> anyhow::Result<UploadedView> {
        let request = http::Request::put(format!("{}/api/v2/hooks/{hook_id}/module", self.server))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/wasm")
            .body(Full::new(Bytes::from(module)))?;
        let (status, answer) = send(&self.http, request).await?;
        if status >= 300 {
            return Err(reason(status, &answer));
        }
        typed("module upload", answer)
    }

    /// Follows an NDJSON stream, calling `each` with every object until the server closes it.
    pub async fn follow(&self, path: &str, mut each: impl FnMut(FollowLine)) -> anyhow::Result<()> {
        let request = http::Request::get(format!("{}/api/v2/{path}", self.server))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::default())?;
        let response = self.http.request(request).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status >= 300 {
            let bytes = body.collect().await?.to_bytes();
            let answer = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(reason(status, &answer));
        }
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(line) = serde_json::from_slice(&line) {
                        each(line);
                    }
                }
            }
        }
        Ok(())
    }

    /// Every item of a paged list endpoint (100 per request).
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Vec<T>> {
        let mut all = Vec::new();
        // Bounded: 1,000 pages of 100 is far beyond any real tenant.
        for page in 0..1_000 {
            let separator = if path.contains('?') { '&' } else { '?' };
            let batch: Vec<T> = self
                .call(
                    Method::GET,
                    &format!("{path}{separator}page={page}&per_page=100"),
                    None::<&()>,
                )
                .await?;
            let last = batch.len() < 100;
            all.extend(batch);
            if last {
                break;
            }
        }
        Ok(all)
    }

    /// A hook's id from its id or its name.
    pub async fn hook_id(&self, id_or_name: &str) -> anyhow::Result<String> {
        let hooks: Vec<HookView> = self.list("hooks").await?;
        hooks
            .into_iter()
            .find(|hook| hook.id == id_or_name || hook.name == id_or_name)
            .map(|hook| hook.id)
            .ok_or_else(|| anyhow!("no hook named {id_or_name:?}"))
    }
}

/// An answer read as the wire type the server sends for it.
fn typed<T: DeserializeOwned>(what: &str, answer: Value) -> anyhow::Result<T> {
    serde_json::from_value(answer)
        .with_context(|| format!("the server's answer to {what} is not what this hookd expects"))
}

/// How a wire type shows as a table row.
pub trait Row {
    /// The column headers.
    const HEADERS: &'static [&'static str];
    /// The row's cells, in header order.
    fn cells(&self) -> Vec<String>;
}

/// A cell for an optional value: `-` when absent.
pub fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

/// Prints `rows` as an aligned table or, with `as_json`, as the API's JSON.
pub fn print_rows<T: Row + Serialize>(rows: &[T], as_json: bool) {
    if as_json {
        print_json(&rows);
        return;
    }
    let table: Vec<Vec<String>> =
        std::iter::once(T::HEADERS.iter().map(|h| h.to_string()).collect())
            .chain(rows.iter().map(|row| {
                row.cells()
                    .iter()
                    .map(|cell| super::terminal::safe(cell))
                    .collect()
            }))
            .collect();
    let widths: Vec<usize> = (0..T::HEADERS.len())
        .map(|i| {
            table
                .iter()
                .map(|row| row.get(i).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Prints one item as a one-row table or, with `as_json`, as the API's JSON.
pub fn print_one<T: Row + Serialize>(item: &T, as_json: bool) {
    if as_json {
        print_json(item);
    } else {
        print_rows(std::slice::from_ref(item), false);
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `KEY=VALUE` arguments as a map.
pub fn pairs(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .ok_or_else(|| anyhow!("{item:?} is not KEY=VALUE"))
        })
        .collect()
}
