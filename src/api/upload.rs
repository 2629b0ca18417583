//! A message with files, as `multipart/form-data`: natter's own payload type, so the spec
//! describes the body (`body`: text, `files`: binary) while the reading is the pages' own
//! (`web::extract::read_multipart`): files spooled to disk as they arrive, never whole in
//! memory, within `NATTER_MAX_UPLOAD` and `NATTER_MAX_FILES`. (poem-openapi's `Upload` would
//! spool without any size limit.)

use poem::{Request, RequestBody};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef},
};

use super::problem::ApiError;
use crate::{
    files::Upload,
    web::extract::{FilePolicy, read_multipart},
};

/// A message's text and files, read from a multipart body.
#[derive(Debug)]
pub struct MessageWithFiles {
    /// The `body` part: empty when it was left out.
    pub body: String,
    /// The `files` parts, spooled.
    pub files: Vec<Upload>,
}

/// The media type, without its `boundary` parameter.
const MULTIPART: &str = "multipart/form-data";

impl Payload for MessageWithFiles {
    const CONTENT_TYPE: &'static str = MULTIPART;

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MULTIPART))
    }

    fn schema_ref() -> MetaSchemaRef {
        let body = MetaSchema {
            description: Some(
                "The text: as `body` in JSON, but it may be empty (or left out) when files \
                 come with it.",
            ),
            ..MetaSchema::new("string")
        };
        let file = MetaSchema::new_with_format("string", "binary");
        let files = MetaSchema {
            description: Some(
                "The files, one part each (with a `filename`), in the order they are to be \
                 shown.",
            ),
            items: Some(Box::new(MetaSchemaRef::Inline(Box::new(file)))),
            ..MetaSchema::new("array")
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            properties: vec![
                ("body", MetaSchemaRef::Inline(Box::new(body))),
                ("files", MetaSchemaRef::Inline(Box::new(files))),
            ],
            ..MetaSchema::new("object")
        }))
    }
}

impl ParsePayload for MessageWithFiles {
    const IS_REQUIRED: bool = true;

    /// Reads the parts. Files too large or too many are refused (413) once the whole body was
    /// read (so the client gets the answer, not a broken connection); any part but one text
    /// `body` and file `files` is refused (422): a file sent under another name would
    /// otherwise be dropped without a word.
    async fn from_request(req: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let form = read_multipart(req, body, FilePolicy::Bearer)
            .await
            .map_err(ApiError::from)?;
        if let Some(refusal) = form.refused {
            return Err(ApiError::from(refusal).into());
        }
        if let Some(name) = form.strays.first() {
            return Err(match name.as_str() {
                "body" => invalid("`body` is a text part, not a file."),
                name => unknown_part(name),
            }
            .into());
        }
        let mut text = None;
        for (name, value) in form.fields {
            match name.as_str() {
                "body" if text.is_none() => text = Some(value),
                "body" => return Err(invalid("Send one `body` part.").into()),
                "files" => {
                    return Err(
                        invalid("Each `files` part must be a file, with a `filename`.").into(),
                    );
                }
                name => return Err(unknown_part(name).into()),
            }
        }
        Ok(Self {
            body: text.unwrap_or_default(),
            files: form.uploads,
        })
    }
}

fn invalid(detail: &str) -> ApiError {
    ApiError::new(super::problem::Kind::InvalidInput, detail)
}

/// A part natter does not take, named (shortened: the name is the client's).
fn unknown_part(name: &str) -> ApiError {
    let name: String = name.chars().take(40).collect();
    ApiError::new(
        super::problem::Kind::InvalidInput,
        format!("natter takes a `body` part and `files` parts, not {name:?}."),
    )
}
