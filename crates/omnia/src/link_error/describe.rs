//! The guest's side of a link error in WIT terms: a function's signature, a named type's
//! definition, with the names the component's imports give its types, and wasmtime's first
//! difference turned round ("this runtime has A, the component B"), since wasmtime calls the
//! runtime's type *expected*.

use wasmtime::Engine;
use wasmtime::component::ResourceType;
use wasmtime::component::types::{self, ComponentInstance, ComponentItem, Type};

/// `func` of the component `guest` in WIT syntax, with the names its imports give its types.
pub(crate) fn signature(
    engine: &Engine,
    guest: &types::Component,
    func: &types::ComponentFunc,
) -> String {
    Describe { engine, guest }.signature(func)
}

/// Renders the guest's side of a difference in WIT terms.
pub(super) struct Describe<'a> {
    pub(super) engine: &'a Engine,
    pub(super) guest: &'a types::Component,
}

impl Describe<'_> {
    /// What differs in `item` of the guest's `instance`, from the rest of wasmtime's error
    /// chain (`rest`: which half of a function, then the first difference). A named type
    /// already reported (it differs in every function that uses it) gives `None`.
    pub(super) fn difference(
        &self,
        instance: &ComponentInstance,
        item: &str,
        rest: &[String],
        reported: &mut Vec<Type>,
    ) -> Option<String> {
        let leaf = rest.last().map_or("", String::as_str);
        let func = match instance.get_export(self.engine, item).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(func)) => func,
            Some(ComponentItem::Resource(_)) if leaf.ends_with("implementation is missing") => {
                return Some(format!(
                    "resource `{item}`: the component expects it; this runtime does not \
                     provide it"
                ));
            }
            _ => return Some(format!("`{item}`: {}", runtime_side(leaf))),
        };
        let signature = self.signature(&func);
        if leaf.ends_with("implementation is missing") {
            return Some(format!(
                "function `{item}`: the component expects `{signature}`; this runtime does not \
                 provide it"
            ));
        }
        let (half, types): (&str, Vec<Type>) = match rest.first().map(String::as_str) {
            Some("type mismatch with parameters") => {
                ("parameters", func.params().map(|(_, t)| t).collect())
            }
            Some("type mismatch with results") => ("results", func.results().collect()),
            _ => {
                return Some(format!(
                    "function `{item}`: the component expects `{signature}`; {}",
                    runtime_side(leaf)
                ));
            }
        };
        // The named variant, enum, record or flags type the difference is about.
        let kind = ["variant", "enum", "record", "flags", "flag"]
            .into_iter()
            .find(|k| leaf.starts_with(&format!("expected {k} ")));
        let within = rest.iter().find_map(|c| {
            c.strip_prefix("type mismatch for case ")
                .or_else(|| c.strip_prefix("type mismatch for field "))
        });
        let about = types.iter().find_map(|t| {
            find(t, &|t| match (kind, t) {
                (Some("variant"), Type::Variant(_))
                | (Some("enum"), Type::Enum(_))
                | (Some("record"), Type::Record(_))
                | (Some("flags" | "flag"), Type::Flags(_)) => true,
                (None, Type::Variant(v)) => within.is_some_and(|w| v.cases().any(|c| c.name == w)),
                (None, Type::Record(r)) => within.is_some_and(|w| r.fields().any(|f| f.name == w)),
                _ => false,
            })
        });
        if let Some(ty) = about
            && let Some(name) = self.type_name(&ty)
        {
            if reported.contains(&ty) {
                return None;
            }
            reported.push(ty.clone());
            return Some(format!(
                "type `{name}`: the component expects {}; {} (first seen in the {half} of \
                 `{item}`)",
                self.render(&ty, false),
                runtime_side(leaf)
            ));
        }
        Some(format!(
            "function `{item}`, its {half}: the component expects `{signature}`; {}",
            runtime_side(leaf)
        ))
    }

    /// `func(a: string) -> result<client, error>`, with the guest's type names.
    fn signature(&self, func: &types::ComponentFunc) -> String {
        let params: Vec<_> = func
            .params()
            .map(|(name, ty)| format!("{name}: {}", self.render(&ty, true)))
            .collect();
        let results: Vec<_> = func.results().map(|ty| self.render(&ty, true)).collect();
        let arrow = if results.is_empty() {
            String::new()
        } else {
            format!(" -> {}", results.join(", "))
        };
        let async_ = if func.async_() { "async " } else { "" };
        format!("{async_}func({}){arrow}", params.join(", "))
    }

    /// The name under which one of the guest's imported interfaces exports an item that `is`
    /// picks out (a named type, a resource).
    fn exported_name(&self, is: impl Fn(&ComponentItem) -> bool) -> Option<String> {
        self.guest.imports(self.engine).find_map(|(_, import)| {
            let ComponentItem::ComponentInstance(instance) = import.ty else {
                return None;
            };
            instance
                .exports(self.engine)
                .find_map(|(name, item)| is(&item.ty).then(|| name.to_string()))
        })
    }

    /// The name the guest's imports give `ty`, if it is an exported type.
    fn type_name(&self, ty: &Type) -> Option<String> {
        self.exported_name(|item| matches!(item, ComponentItem::Type(t) if t == ty))
    }

    /// The name the guest's imports give the resource `ty`.
    fn resource_name(&self, ty: &ResourceType) -> String {
        self.exported_name(|item| matches!(item, ComponentItem::Resource(r) if r == ty))
            .unwrap_or_else(|| "resource".into())
    }

    /// `ty` in WIT syntax; with `by_name`, a named type is shown by its name.
    fn render(&self, ty: &Type, by_name: bool) -> String {
        if by_name && let Some(name) = self.type_name(ty) {
            return name;
        }
        let inner = |t: &Type| self.render(t, true);
        let list = |items: Vec<String>| items.join(", ");
        match ty {
            Type::Bool => "bool".into(),
            Type::S8 => "s8".into(),
            Type::U8 => "u8".into(),
            Type::S16 => "s16".into(),
            Type::U16 => "u16".into(),
            Type::S32 => "s32".into(),
            Type::U32 => "u32".into(),
            Type::S64 => "s64".into(),
            Type::U64 => "u64".into(),
            Type::Float32 => "f32".into(),
            Type::Float64 => "f64".into(),
            Type::Char => "char".into(),
            Type::String => "string".into(),
            Type::List(l) => format!("list<{}>", inner(&l.ty())),
            Type::Option(o) => format!("option<{}>", inner(&o.ty())),
            Type::Result(r) => {
                let part = |t: Option<Type>| t.map_or_else(|| "_".into(), |t| inner(&t));
                format!("result<{}, {}>", part(r.ok()), part(r.err()))
            }
            Type::Tuple(t) => format!("tuple<{}>", list(t.types().map(|t| inner(&t)).collect())),
            Type::Variant(v) => format!(
                "variant {{ {} }}",
                list(
                    v.cases()
                        .map(|c| match c.ty {
                            Some(t) => format!("{}({})", c.name, inner(&t)),
                            None => c.name.to_string(),
                        })
                        .collect()
                )
            ),
            Type::Enum(e) => format!("enum {{ {} }}", list(e.names().map(String::from).collect())),
            Type::Record(r) => format!(
                "record {{ {} }}",
                list(
                    r.fields()
                        .map(|f| format!("{}: {}", f.name, inner(&f.ty)))
                        .collect()
                )
            ),
            Type::Flags(f) => format!(
                "flags {{ {} }}",
                list(f.names().map(String::from).collect())
            ),
            Type::Own(r) => self.resource_name(r),
            Type::Borrow(r) => format!("borrow<{}>", self.resource_name(r)),
            Type::Future(_) => "future<..>".into(),
            Type::Stream(_) => "stream<..>".into(),
            Type::ErrorContext => "error-context".into(),
            Type::Map(_) | Type::FixedLengthList(_) => "..".into(),
        }
    }
}

/// The first type in `ty` (itself included) that `pred` accepts, in the order the linker
/// compares them.
fn find(ty: &Type, pred: &dyn Fn(&Type) -> bool) -> Option<Type> {
    if pred(ty) {
        return Some(ty.clone());
    }
    let inner: Vec<Type> = match ty {
        Type::List(l) => vec![l.ty()],
        Type::Option(o) => vec![o.ty()],
        Type::Result(r) => r.ok().into_iter().chain(r.err()).collect(),
        Type::Tuple(t) => t.types().collect(),
        Type::Record(r) => r.fields().map(|f| f.ty).collect(),
        Type::Variant(v) => v.cases().filter_map(|c| c.ty).collect(),
        _ => Vec::new(),
    };
    inner.iter().find_map(|t| find(t, pred))
}

/// Wasmtime's first difference, in which *expected* is the runtime's type and *found* the
/// component's, said the other way round: `this runtime has A, the component B`.
pub(crate) fn runtime_side(leaf: &str) -> String {
    // wasmtime's words for a `func` / `async func` mismatch name its own APIs; say which shape.
    if leaf.starts_with("type mismatch with async") {
        return if leaf.contains("declared `async func`") {
            "this runtime serves it as a plain `func`, not as the `async func` the component \
             was built for"
                .to_owned()
        } else {
            "this runtime serves it as an `async func`, not as the plain `func` the component \
             was built for"
                .to_owned()
        };
    }
    leaf.strip_prefix("expected ")
        .and_then(|rest| {
            rest.split_once(", found ")
                .or_else(|| rest.split_once(" found "))
        })
        .map_or_else(
            || format!("the linker says: {leaf}"),
            |(runtime, guest)| format!("this runtime has {runtime}, the component {guest}"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasmtimes_words_are_turned_round() {
        assert_eq!(
            runtime_side("expected variant of 4 cases, found 5 cases"),
            "this runtime has variant of 4 cases, the component 5 cases"
        );
        assert_eq!(
            runtime_side("expected `u32` found `string`"),
            "this runtime has `u32`, the component `string`"
        );
        assert_eq!(
            runtime_side(
                "type mismatch with async: this import is declared `async func` in WIT, but \
                 was satisfied with a sync-style host function (...)"
            ),
            "this runtime serves it as a plain `func`, not as the `async func` the component \
             was built for"
        );
        assert_eq!(
            runtime_side("resource type mismatch"),
            "the linker says: resource type mismatch"
        );
    }
}
