//! Which op consumes a checkpoint parameter: the checkpoint name translated segment by segment
//! into the op names of goldens/README.md ("The modules and their op names"), so a profile
//! rule written against op names also decides the parameter's storage dtype at upload.
//!
//! The backend layer cannot see the modules' path-prefix scopes, so the translation is a table
//! here; `tests/emu.rs` checks it against every op's `params` in the committed capture.

/// An op that reads a parameter: its name and its kind (capture name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub op: String,
    pub kind: &'static str,
    /// The op needs the parameter in ROW_MAJOR layout (embedding tables, TT_NUMERICS §2.3).
    pub row_major: bool,
}

const VISION: &str = "paligemma_with_expert.paligemma.model.vision_tower.vision_model.";
const PROJECTOR: &str = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.";
const LANGUAGE: &str = "paligemma_with_expert.paligemma.model.language_model.";
const EXPERT: &str = "paligemma_with_expert.gemma_expert.model.";
const TIED: &str = "paligemma_with_expert.paligemma.lm_head.weight";

fn c(op: String, kind: &'static str) -> Consumer {
    Consumer {
        op,
        kind,
        row_major: false,
    }
}

/// `layers.{i}.<rest>` → (`layers.{i}`, rest).
fn layer(rest: &str) -> Option<(String, &str)> {
    let r = rest.strip_prefix("layers.")?;
    let (i, tail) = r.split_once('.')?;
    i.parse::<usize>().ok()?;
    Some((format!("layers.{i}"), tail))
}

/// Drops the `.weight` / `.bias` suffix.
fn param_base(tail: &str) -> Option<&str> {
    tail.strip_suffix(".weight")
        .or_else(|| tail.strip_suffix(".bias"))
}

/// A Gemma stack parameter under op prefix `s` (`vlm` or `expert`).
fn gemma(s: &str, rest: &str) -> Option<Vec<Consumer>> {
    if rest == "norm.weight" {
        return Some(vec![c(format!("{s}.norm"), "rms_norm")]);
    }
    let (l, tail) = layer(rest)?;
    let (leaf, kind) = match param_base(tail)? {
        "input_layernorm" => ("input_norm", "rms_norm"),
        "post_attention_layernorm" => ("post_norm", "rms_norm"),
        "self_attn.q_proj" => ("attn.q", "linear"),
        "self_attn.k_proj" => ("attn.k", "linear"),
        "self_attn.v_proj" => ("attn.v", "linear"),
        "self_attn.o_proj" => ("attn.o", "linear"),
        "mlp.gate_proj" => ("mlp.gate", "linear"),
        "mlp.up_proj" => ("mlp.up", "linear"),
        "mlp.down_proj" => ("mlp.down", "linear"),
        _ => return None,
    };
    Some(vec![c(format!("{s}.{l}.{leaf}"), kind)])
}

/// SigLIP parameters.
fn vision(rest: &str) -> Option<Vec<Consumer>> {
    match rest {
        "embeddings.patch_embedding.weight" | "embeddings.patch_embedding.bias" => {
            return Some(vec![c("siglip.patch_embed".into(), "conv2d_patch")])
        }
        // Interpolated when the patch grid differs from the table's, else added directly.
        "embeddings.position_embedding.weight" => {
            return Some(vec![
                c("siglip.pos_embed".into(), "interpolate_bicubic"),
                c("siglip.embed".into(), "add"),
            ])
        }
        "post_layernorm.weight" | "post_layernorm.bias" => {
            return Some(vec![c("siglip.post_ln".into(), "layer_norm")])
        }
        _ => {}
    }
    let (l, tail) = layer(rest.strip_prefix("encoder.")?)?;
    let (leaf, kind) = match param_base(tail)? {
        "layer_norm1" => ("ln1", "layer_norm"),
        "layer_norm2" => ("ln2", "layer_norm"),
        "self_attn.q_proj" => ("attn.q", "linear"),
        "self_attn.k_proj" => ("attn.k", "linear"),
        "self_attn.v_proj" => ("attn.v", "linear"),
        "self_attn.out_proj" => ("attn.out", "linear"),
        "mlp.fc1" => ("mlp.fc1", "linear"),
        "mlp.fc2" => ("mlp.fc2", "linear"),
        _ => return None,
    };
    Some(vec![c(format!("siglip.{l}.{leaf}"), kind)])
}

/// Adds the step-0 name (`denoise.0.<op>`) of ops every denoise step runs.
fn with_step0(v: Vec<Consumer>) -> Vec<Consumer> {
    let mut out = v.clone();
    out.extend(v.into_iter().map(|x| Consumer {
        op: format!("denoise.0.{}", x.op),
        ..x
    }));
    out
}

/// The ops that read checkpoint parameter `name` (current naming, PI0_SPEC §2.2), or `None`
/// when `name` is not a pi0 parameter (e.g. an activation or raw input name).
pub fn consumers(name: &str) -> Option<Vec<Consumer>> {
    if name == TIED {
        return Some(vec![Consumer {
            op: "lang_embed.embedding".into(),
            kind: "embedding",
            row_major: true,
        }]);
    }
    if let Some(rest) = name.strip_prefix(VISION) {
        return vision(rest);
    }
    if let Some(rest) = name.strip_prefix(PROJECTOR) {
        return matches!(rest, "weight" | "bias")
            .then(|| vec![c("projector.linear".into(), "linear")]);
    }
    if let Some(rest) = name.strip_prefix(LANGUAGE) {
        return gemma("vlm", rest);
    }
    if let Some(rest) = name.strip_prefix(EXPERT) {
        return gemma("expert", rest).map(with_step0);
    }
    let base = param_base(name)?;
    let op = match base {
        "state_proj" => "suffix.state_proj",
        "action_in_proj" => "suffix.action_in",
        "action_time_mlp_in" => "suffix.mlp_in",
        "action_time_mlp_out" => "suffix.mlp_out",
        "action_out_proj" => "action_proj.linear",
        _ => return None,
    };
    Some(with_step0(vec![c(op.into(), "linear")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_real_names() {
        let v = consumers(
            "paligemma_with_expert.paligemma.model.language_model.layers.5.mlp.down_proj.weight",
        )
        .unwrap();
        assert_eq!(v, vec![c("vlm.layers.5.mlp.down".into(), "linear")]);
        let v =
            consumers("paligemma_with_expert.gemma_expert.model.layers.17.self_attn.o_proj.weight")
                .unwrap();
        let ops: Vec<&str> = v.iter().map(|c| c.op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "expert.layers.17.attn.o",
                "denoise.0.expert.layers.17.attn.o"
            ]
        );
        assert!(consumers(TIED).unwrap()[0].row_major);
        assert_eq!(
            consumers("action_out_proj.bias").unwrap()[0].op,
            "action_proj.linear"
        );
        assert!(consumers("images").is_none());
        assert!(consumers("siglip.post_ln").is_none());
        assert!(consumers(
            "paligemma_with_expert.paligemma.model.language_model.layers.x.mlp.up_proj.weight"
        )
        .is_none());
    }
}
