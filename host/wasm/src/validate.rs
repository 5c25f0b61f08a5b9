//! Checks that a binary is a plugin before and after compiling it, so that a
//! refusal names the actual problem instead of a linker error.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginError;

/// The only imports a plugin may have. The types interface shows up when a
/// guest's bindings re-export its type definitions.
pub const ALLOWED_IMPORTS: [&str; 3] =
    ["turnstile:plugin/state@0.3.0", "turnstile:plugin/log@0.3.0", "turnstile:plugin/types@0.3.0"];

/// The package prefix of the world's interfaces, whatever their version.
const PACKAGE: &str = "turnstile:plugin/";

/// The functions a plugin must export.
pub const REQUIRED_EXPORTS: [&str; 3] = ["handle", "route", "manifest"];

const MAGIC: &[u8; 4] = b"\0asm";

/// Refuses bytes that are not a WebAssembly component from their header
/// alone: cheaper than compiling, and the message is precise.
pub fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        let what = if bytes.is_empty() {
            "the file is empty".to_owned()
        } else if bytes.len() < 8 {
            format!("only {} bytes, and no \\0asm magic", bytes.len())
        } else {
            "it does not start with the \\0asm magic".to_owned()
        };
        return Err(PluginError::NotWasm(what));
    }
    // Bytes 4..6 are the version, 6..8 the layer: 0 for a core module,
    // 1 for a component.
    match (bytes[6], bytes[7]) {
        (0, 0) => Err(PluginError::CoreModule),
        (1, 0) => Ok(()),
        _ => Err(PluginError::NotWasm(format!("unknown binary layer {:#04x}{:02x}", bytes[7], bytes[6]))),
    }
}

/// Refuses a compiled component whose imports leave the world or whose
/// exports miss part of it. Types are checked later by the linker.
pub fn check_component(engine: &Engine, component: &Component) -> Result<(), PluginError> {
    let ty = component.component_type();
    if let Some((name, _)) = ty.imports(engine).find(|(name, _)| !ALLOWED_IMPORTS.contains(name)) {
        // One of ours at another version: say so, not "forbidden".
        if let Some((_, version)) = name.strip_prefix(PACKAGE).and_then(|rest| rest.split_once('@')) {
            return Err(PluginError::WorldVersion { found: version.to_owned(), import: name.to_owned() });
        }
        return Err(PluginError::ForbiddenImport {
            import: name.to_owned(),
            allowed: ALLOWED_IMPORTS.map(|n| format!("`{n}`")).join(", "),
        });
    }
    for export in REQUIRED_EXPORTS {
        match ty.get_export(engine, export) {
            Some(item) if matches!(item.ty, ComponentItem::ComponentFunc(_)) => {}
            Some(_) => {
                return Err(PluginError::Incompatible(format!("export `{export}` is not a function")));
            }
            None => return Err(PluginError::MissingExport(export.to_owned())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert!(matches!(check_header(b""), Err(PluginError::NotWasm(_))));
        assert!(matches!(check_header(b"hello world"), Err(PluginError::NotWasm(_))));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(PluginError::CoreModule)));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(check_header(b"\0asm\x0d\0\x02\0"), Err(PluginError::NotWasm(_))));
    }
}
