//! A message's attachments for API clients: `GET /files/{token}` and its image's
//! `/thumbnail`, the addresses `url` and `thumbnail_url` of an attachment name.
//!
//! The pages serve files at `/files/{token}/{name}` to the session cookie, which the API never
//! accepts; these routes are the same files for a bearer token, answered by the same code
//! (`web::files::respond`): members of the file's room only (404 otherwise, counted as a wrong
//! guess), `Range` requests, `ETag`, `Content-Disposition`, `nosniff`, and a sandboxing CSP.

use poem::{
    IntoResponse, Request, Response,
    error::ResponseError,
    http::{StatusCode, header},
    web::Data,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Path,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::{Example, Type},
};

use super::{
    Tag,
    auth::Token,
    problem::{ApiError, Kind, PROBLEM_JSON, Problem, Problems, status},
};
use crate::{State, config::Config, store::Attachment, web::files::respond};

/// One file of a message.
#[derive(Debug, Object)]
#[oai(rename = "Attachment", example)]
pub struct AttachmentJson {
    /// Its name as natter keeps it: as sent, minus what misleads or breaks (path separators,
    /// control characters, …).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its type, judged by natter from its first bytes (never from its name or from what the
    /// client said): `image/png`, `application/pdf`, `text/plain; charset=utf-8`, …
    #[oai(rename = "type")]
    pub mime: String,
    /// Where to download it, with your token (`GET`, answers `Range` requests).
    pub url: String,
    /// An image's width in pixels, orientation applied (`null`: not an image natter could
    /// decode; it is then offered as a file).
    pub width: Option<i64>,
    /// An image's height in pixels (`null`: not an image).
    pub height: Option<i64>,
    /// An image's thumbnail (JPEG, or PNG where it has transparency; at most 800 px on its
    /// long side), re-encoded by natter (`null`: not an image).
    pub thumbnail_url: Option<String>,
}

impl AttachmentJson {
    /// `file` as the API shows it, its addresses under the public URL.
    pub fn of(file: &Attachment, config: &Config) -> Self {
        let url = format!("{}/api/v1/files/{}", config.public_origin(), file.token);
        Self {
            name: file.name.clone(),
            size: file.size,
            mime: file.mime.clone(),
            width: file.image.map(|i| i.width),
            height: file.image.map(|i| i.height),
            thumbnail_url: file.image.map(|_| format!("{url}/thumbnail")),
            url,
        }
    }
}

impl Example for AttachmentJson {
    fn example() -> Self {
        let url = "https://natter.example/api/v1/files/k3m9x2q7w4e8r5t6y2u3i4o5pa";
        Self {
            name: "whiteboard.png".into(),
            size: 1_048_576,
            mime: "image/png".into(),
            url: url.into(),
            width: Some(1600),
            height: Some(1200),
            thumbnail_url: Some(format!("{url}/thumbnail")),
        }
    }
}

/// What a download may answer besides its bytes.
type Refused = Problems<{ status::ALWAYS | status::NOT_FOUND | status::RATE_LIMITED }>;

pub struct Api;

#[OpenApi(tag = "Tag::Messages")]
impl Api {
    /// Download an attachment
    ///
    /// The file's bytes, as they were sent, in the `type` natter judged them to be. Only
    /// members of the file's room get it: anyone else gets 404, as for a file that does not
    /// exist, and it counts as a wrong room code. A message deleted takes its files with it.
    /// Ask for a part with `Range: bytes=START-END` (one range); revalidate with
    /// `If-None-Match` and the `ETag` (a file never changes).
    ///
    /// ```sh
    /// curl -OJ -H "Authorization: Bearer $NATTER_TOKEN" \
    ///      https://natter.example/api/v1/files/k3m9x2q7w4e8r5t6y2u3i4o5pa
    /// ```
    #[oai(path = "/files/:token", method = "get", operation_id = "download_file")]
    async fn download(
        &self,
        auth: Token,
        state: Data<&State>,
        /// The file's token: the last piece of its `url`.
        token: Path<String>,
        req: &Request,
    ) -> Result<Download, Refused> {
        let response = respond(&state, req, auth.0.id, &token.0, false).await?;
        Ok(Download(response))
    }

    /// Download an image's thumbnail
    ///
    /// A smaller copy of an image attachment (at most 800 px on its long side), decoded and
    /// re-encoded by natter: JPEG, or PNG where the image has transparency. 404 for a file
    /// that is not an image natter could decode (its `thumbnail_url` is `null`), and for
    /// anyone who is not a member of its room.
    #[oai(
        path = "/files/:token/thumbnail",
        method = "get",
        operation_id = "download_thumbnail"
    )]
    async fn thumbnail(
        &self,
        auth: Token,
        state: Data<&State>,
        /// The file's token: the last piece of its `url`.
        token: Path<String>,
        req: &Request,
    ) -> Result<Thumbnail, Refused> {
        let response = respond(&state, req, auth.0.id, &token.0, true).await?;
        Ok(Thumbnail(response))
    }
}

/// A file's bytes, whole or in part, as `web::files::respond` answered.
pub struct Download(Response);

/// A thumbnail's bytes, as `web::files::respond` answered.
pub struct Thumbnail(Response);

impl IntoResponse for Download {
    /// The answer, with a range past the end (416) said as a problem, like every API error.
    fn into_response(self) -> Response {
        let response = self.0;
        if response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
            return response;
        }
        let range = response.headers().get(header::CONTENT_RANGE).cloned();
        let mut problem = ApiError::new(
            Kind::RangeNotSatisfiable,
            "The range starts past the end of the file; `Content-Range` gives its size.",
        )
        .as_response();
        if let Some(range) = range {
            problem.headers_mut().insert(header::CONTENT_RANGE, range);
        }
        problem
    }
}

impl IntoResponse for Thumbnail {
    fn into_response(self) -> Response {
        self.0
    }
}

/// A header of a file answer, for the spec.
fn header_meta(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.into(),
        description: Some(description.into()),
        required: true,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

/// Bytes of any type, for the spec.
fn binary(content_type: &'static str) -> MetaMediaType {
    MetaMediaType {
        content_type,
        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary"))),
    }
}

/// The headers every file answer carries, for the spec.
fn file_headers() -> Vec<MetaHeader> {
    vec![
        header_meta(
            "Content-Disposition",
            "`inline` for an image natter could decode, `attachment` for everything else; \
             with the file's name (`filename` in ASCII, `filename*` in UTF-8).",
        ),
        header_meta("ETag", "The file's tag, for `If-None-Match`."),
        header_meta("X-Content-Type-Options", "`nosniff`."),
        header_meta(
            "Content-Security-Policy",
            "`default-src 'none'; sandbox; frame-ancestors 'none'`: nothing in a file runs.",
        ),
    ]
}

/// The answer to a revalidation, for the spec.
fn not_modified() -> MetaResponse {
    MetaResponse {
        description: "Not modified: the `If-None-Match` tag is the file's.",
        status: Some(304),
        status_range: None,
        content: Vec::new(),
        headers: vec![header_meta("ETag", "The file's tag.")],
    }
}

impl ApiResponse for Download {
    fn meta() -> MetaResponses {
        let range = |description| MetaHeader {
            name: "Content-Range".into(),
            description: Some(description),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        };
        let mut partial_headers = file_headers();
        partial_headers.push(range(
            "The part sent and the whole size: `bytes START-END/SIZE`.".into(),
        ));
        let problem = ApiError::new(
            Kind::RangeNotSatisfiable,
            "The range starts past the end of the file; `Content-Range` gives its size.",
        )
        .body();
        let unsatisfiable = MetaSchema {
            all_of: vec![Problem::schema_ref()],
            example: poem_openapi::types::ToJSON::to_json(&problem),
            ..MetaSchema::ANY
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The whole file, in its `type` (`application/octet-stream` \
                                  when natter could not tell).",
                    status: Some(200),
                    status_range: None,
                    content: vec![binary("*/*")],
                    headers: file_headers(),
                },
                MetaResponse {
                    description: "The part the `Range` header asked for.",
                    status: Some(206),
                    status_range: None,
                    content: vec![binary("*/*")],
                    headers: partial_headers,
                },
                not_modified(),
                MetaResponse {
                    description: "`range-not-satisfiable`: the `Range` starts past the end of \
                                  the file.",
                    status: Some(416),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: MetaSchemaRef::Inline(Box::new(unsatisfiable)),
                    }],
                    headers: vec![range("`bytes */SIZE`: the file's size.".into())],
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl ApiResponse for Thumbnail {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The thumbnail.",
                    status: Some(200),
                    status_range: None,
                    content: vec![binary("image/jpeg"), binary("image/png")],
                    headers: file_headers(),
                },
                not_modified(),
            ],
        }
    }

    fn register(_registry: &mut Registry) {}
}
