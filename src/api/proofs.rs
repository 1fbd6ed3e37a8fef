//! The routes of the Merkle tree: `GET /v1/checkpoint` (the signed checkpoint, the text
//! `carelog checkpoint` prints), `GET /v1/proof/inclusion` and `GET /v1/proof/consistency`
//! (the JSON `carelog prove … --json` prints). All three are made by [`crate::app::checkpoint`],
//! as for the CLI. The signer is the store's own key (`<store>/signing-key`, made on first use:
//! `carelog checkpoint --verifier-key` prints its verifier key).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::routes::Params;
use super::{ApiError, ApiState};
use crate::app::access::Action;
use crate::app::checkpoint;
use crate::app::{App, AppError};
use crate::log::LogError;
use crate::merkle::note::NoteSigner;

/// Who may ask for checkpoints and proofs: supervisors, auditors and admins, the roles that
/// read a stream. (The proofs reveal hashes only, never an event.)
const PROOF_ACTION: Action = Action::ReadStream;

/// A refusal of the tree (a size past the head, a position outside the tree) as a 400 that
/// names the parameter at fault: `size` when it is past the head (which only grows, so a size
/// at most the head now was at most the head then), else `other`.
fn tree_error(app: &App, e: AppError, size: Option<u64>, other: &str) -> ApiError {
    let AppError::Log(LogError::Tree(message)) = &e else {
        return e.into();
    };
    let head = app.log().head_position();
    let field = if size.is_some_and(|n| n > head) {
        "size"
    } else {
        other
    };
    ApiError::bad_request(field, "out_of_range", message.clone())
}

/// Signs with the store's signer, loaded (or made) at the first call. Under a lock, so two
/// first calls at once never both make a key.
fn with_signer<T>(
    state: &ApiState,
    app: &App,
    f: impl FnOnce(&NoteSigner) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut held = state
        .shared
        .signer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let signer = match held.take() {
        Some(signer) => signer,
        None => checkpoint::signer(app.log(), None)?,
    };
    let result = f(&signer);
    *held = Some(signer);
    result
}

/// `GET /v1/checkpoint?size=N`: the signed checkpoint of the tree at N (default the head).
pub(super) async fn checkpoint(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, PROOF_ACTION).await?;
    params.only(&["size"])?;
    let size = params.optional_u64("size")?;
    let signing = state.clone();
    let note = state
        .run_api(move |app| {
            with_signer(&signing, app, |signer| {
                checkpoint::signed_checkpoint(app.log(), signer, size)
                    .map_err(|e| tree_error(app, e, size, "size"))
            })
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET /v1/proof/inclusion?position=P&size=N`.
pub(super) async fn inclusion(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, PROOF_ACTION).await?;
    params.only(&["position", "size"])?;
    let position = params.required_u64("position")?;
    let size = params.optional_u64("size")?;
    let proof = state
        .run_api(move |app| {
            checkpoint::inclusion(app.log(), position, size)
                .map_err(|e| tree_error(app, e, size, "position"))
        })
        .await?;
    Ok(Json(proof).into_response())
}

/// `GET /v1/proof/consistency?old_size=M&size=N`.
pub(super) async fn consistency(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, PROOF_ACTION).await?;
    params.only(&["old_size", "size"])?;
    let old_size = params.required_u64("old_size")?;
    let size = params.optional_u64("size")?;
    let proof = state
        .run_api(move |app| {
            checkpoint::consistency(app.log(), old_size, size)
                .map_err(|e| tree_error(app, e, size, "old_size"))
        })
        .await?;
    Ok(Json(proof).into_response())
}
