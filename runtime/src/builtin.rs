//! Modules built into the `capsule` binary, so that they run offline on a fresh install.

/// The hello-world module (`runtime/assets/hello-world.wat`), compiled at build time.
pub const HELLO_WORLD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello-world.wasm"));

/// The built-in image with this name (`hello-world`), added to the store the first time
/// it is asked for: a one-layer image of the built-in module, made reproducibly (same
/// digest on every install). `None` when `name` is not a built-in.
///
/// # Errors
/// [`crate::image::ImageError`] when the store cannot be written.
pub fn ensure_image(
    images: &crate::image::Images,
    name: &str,
) -> Result<Option<crate::image::Image>, crate::image::ImageError> {
    use crate::image::archive::{ImportOptions, import_module};
    use crate::image::reference::Reference;
    let Ok(reference) = Reference::parse(name) else {
        return Ok(None);
    };
    let Some(wasm) = reference.name().as_deref().and_then(lookup) else {
        return Ok(None);
    };
    let image = import_module(
        images,
        wasm.to_vec(),
        &ImportOptions {
            path: "/hello".to_owned(),
            epoch: 0,
            created_by: "capsule built-in image (runtime/assets/hello-world.wat)".to_owned(),
        },
    )?;
    images.set_name(&image, Some(&reference))?;
    Ok(Some(image))
}

/// The built-in module with this name, if there is one.
pub fn lookup(name: &str) -> Option<&'static [u8]> {
    match name {
        "hello-world" | "hello-world:latest" => Some(HELLO_WORLD),
        _ => None,
    }
}
