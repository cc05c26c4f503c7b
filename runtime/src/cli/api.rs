//! A small client of hookd's Management API for the admin commands: gets a token with the
//! admin credentials (from `DATA_DIR/admin.json`, flags or the environment), then sends JSON or
//! module uploads and turns error answers into one-line reasons.

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

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
        let token = answer["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("the token endpoint gave no access_token"))?
            .to_owned();
        Ok(ManagementClient {
            server,
            token,
            http,
        })
    }

    /// A JSON call; `Err` carries the server's one-line reason.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}/api/v2/{path}", self.server))
            .header("authorization", format!("Bearer {}", self.token));
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::default(),
        };
        let (status, answer) = send(&self.http, request.body(body)?).await?;
        if status >= 300 {
            return Err(reason(status, &answer));
        }
        Ok(answer)
    }

    /// Uploads a module as a hook's new version.
    pub async fn upload(&self, hook_id: &str, module: Vec<u8>) -> anyhow::Result<Value> {
        let request = http::Request::put(format!("{}/api/v2/hooks/{hook_id}/module", self.server))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/wasm")
            .body(Full::new(Bytes::from(module)))?;
        let (status, answer) = send(&self.http, request).await?;
        if status >= 300 {
            return Err(reason(status, &answer));
        }
        Ok(answer)
    }

    /// Follows an NDJSON stream, calling `each` with every object until the server closes it.
    pub async fn follow(&self, path: &str, mut each: impl FnMut(Value)) -> anyhow::Result<()> {
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
                    if let Ok(value) = serde_json::from_slice(&line) {
                        each(value);
                    }
                }
            }
        }
        Ok(())
    }

    /// Every item of a paged list endpoint (100 per request).
    pub async fn list(&self, path: &str) -> anyhow::Result<Value> {
        let mut all = Vec::new();
        // Bounded: 1,000 pages of 100 is far beyond any real tenant.
        for page in 0..1_000 {
            let separator = if path.contains('?') { '&' } else { '?' };
            let batch = self
                .call(
                    Method::GET,
                    &format!("{path}{separator}page={page}&per_page=100"),
                    None,
                )
                .await?;
            let items = batch.as_array().cloned().unwrap_or_default();
            let last = items.len() < 100;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(Value::Array(all))
    }

    /// A hook's id from its id or its name.
    pub async fn hook_id(&self, id_or_name: &str) -> anyhow::Result<String> {
        let hooks = self.list("hooks").await?;
        hooks
            .as_array()
            .into_iter()
            .flatten()
            .find(|hook| hook["id"] == id_or_name || hook["name"] == id_or_name)
            .and_then(|hook| hook["id"].as_str().map(str::to_owned))
            .ok_or_else(|| anyhow!("no hook named {id_or_name:?}"))
    }
}

/// Prints `rows` as an aligned table of `columns` (header, field), or as JSON.
pub fn print(value: &Value, columns: &[(&str, &str)], as_json: bool) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        return;
    }
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let cell = |row: &Value, field: &str| -> String {
        super::terminal::safe(&match row.pointer(field) {
            None | Some(Value::Null) => "-".to_owned(),
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => other.to_string(),
        })
    };
    let table: Vec<Vec<String>> =
        std::iter::once(columns.iter().map(|(h, _)| h.to_string()).collect())
            .chain(
                rows.iter()
                    .map(|row| columns.iter().map(|(_, f)| cell(row, f)).collect()),
            )
            .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
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

/// `KEY=VALUE` arguments as a JSON object.
pub fn pairs(items: &[String]) -> anyhow::Result<Value> {
    let mut object = serde_json::Map::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("{item:?} is not KEY=VALUE"))?;
        object.insert(key.to_owned(), json!(value));
    }
    Ok(Value::Object(object))
}
