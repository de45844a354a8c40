//! Why a component does not link, said so that the user can act on it.
//!
//! Wasmtime's linker stops at the first import it cannot satisfy, and its error names the
//! interface, the item and the first difference, in its own words ("expected variant of 4
//! cases, found 5 cases", where *expected* is the runtime's type). Two situations need
//! different answers, and a user cannot tell them apart from that error:
//!
//! * the interface is **missing** from this build: another profile or cargo feature has it;
//! * the interface is **here, with another shape**: the guest was built against a different
//!   draft or version of its WIT, and must be rebuilt (or Omnia updated).
//!
//! [`explain`] lists every unsatisfied import, each classified: it links again and again,
//! standing in for each reported import (or item) with trapping stubs, until the link succeeds.
//! For an import that differs it says which item, what the component expects (its WIT, read from
//! the component) and what this runtime provides (from wasmtime's error), and whether the
//! runtime has the very same version. The linker cannot list what it defines, so presence is
//! inferred: the interface is here if defining one of the guest's items under that exact name
//! clashes with a definition, or if an item the guest lists before the failing one linked.

use std::collections::HashSet;

use anyhow::anyhow;
use wasmtime::Engine;
use wasmtime::component::types::{self, ComponentInstance, ComponentItem, Type};
use wasmtime::component::{Component, Linker, ResourceType};

/// An import the linker could not satisfy.
#[derive(Debug, PartialEq, Eq)]
enum Unlinked {
    /// This build has no such interface.
    Missing(String),
    /// This build has the interface, but an item differs.
    Differs { interface: String, detail: String },
}

/// The error for a `component` that `linker` cannot link (`err` is wasmtime's): every
/// unsatisfied import, missing or differing, and what to do. `build` names this build (its
/// profile and features). Falls back to wasmtime's error if the imports cannot be told apart.
pub(crate) fn explain<T: 'static>(
    linker: &Linker<T>,
    component: &Component,
    build: &str,
    err: wasmtime::Error,
) -> anyhow::Error {
    let unlinked = diagnose(linker, component);
    if unlinked.is_empty() {
        return err.into();
    }
    let differs: Vec<_> = unlinked
        .iter()
        .filter_map(|u| match u {
            Unlinked::Differs { interface, detail } => Some(format!("{interface}: {detail}")),
            Unlinked::Missing(_) => None,
        })
        .collect();
    let missing: Vec<_> = unlinked
        .iter()
        .filter_map(|u| match u {
            Unlinked::Missing(name) => Some(name.as_str()),
            Unlinked::Differs { .. } => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !differs.is_empty() {
        parts.push(format!(
            "the component's imports differ from what this runtime provides:\n  - {}\n\
             rebuild the component against the WIT this runtime provides (or run it with an \
             omnia that has its version)",
            differs.join("\n  - ")
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "the component imports {} interface(s) this runtime does not provide:\n  - {}\n\
             this omnia is {build}; run the component with an omnia build (profile or cargo \
             features) that has these capabilities",
            missing.len(),
            missing.join("\n  - ")
        ));
    }
    anyhow!(parts.join("\n"))
}

/// Links `component` again and again, standing in for each import (or item) the linker
/// reports, until it links; returns what was reported, classified.
fn diagnose<T: 'static>(base: &Linker<T>, component: &Component) -> Vec<Unlinked> {
    let engine = base.engine().clone();
    let guest = component.component_type();
    let mut probe = base.clone();
    probe.allow_shadowing(true);
    let mut unlinked = Vec::new();
    let mut described = HashSet::new();
    let mut reported_types = Vec::new();
    // One round per reported item at most.
    let rounds: usize = guest
        .imports(&engine)
        .map(|(_, import)| match import.ty {
            ComponentItem::ComponentInstance(instance) => instance.exports(&engine).len(),
            _ => 1,
        })
        .sum();
    for _ in 0..=rounds {
        let Err(err) = probe.instantiate_pre(component) else {
            break;
        };
        let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
        let Some(interface) = chain.first().and_then(|c| backticked(c)) else {
            break;
        };
        let instance = match guest.get_import(&engine, &interface).map(|i| i.ty) {
            Some(ComponentItem::ComponentInstance(instance)) => instance,
            // A bare function import: here or not, it can only be stood in for.
            Some(ComponentItem::ComponentFunc(_)) => {
                unlinked.push(Unlinked::Missing(interface.clone()));
                if probe
                    .root()
                    .func_new(&interface, |_, _, _, _| Err(not_provided()))
                    .is_err()
                {
                    break;
                }
                continue;
            }
            _ => break,
        };
        let item = chain
            .get(1)
            .and_then(|c| c.strip_prefix("instance export "))
            .and_then(backticked);
        let leaf = chain.last().map_or("", String::as_str);
        let item_missing = leaf.ends_with("implementation is missing");
        let exact = exact_name_defined(base, &instance, &engine, &interface);
        let present = exact || linked_before(&instance, &engine, item.as_deref());
        if item_missing && !present {
            unlinked.push(Unlinked::Missing(interface.clone()));
            stub_all(&mut probe, &interface, &instance, &engine);
            continue;
        }
        let Some(item) = item else { break };
        if !described.insert((interface.clone(), item.clone())) {
            break; // a stub that did not take: stop rather than loop
        }
        let here = if exact {
            "the same version here"
        } else {
            "a compatible version here"
        };
        let describe = Describe {
            engine: &engine,
            guest: &guest,
        };
        if let Some(detail) =
            describe.difference(&instance, &item, &chain[2..], &mut reported_types)
        {
            unlinked.push(Unlinked::Differs {
                interface: format!("{interface} ({here})"),
                detail,
            });
        }
        // Only an interface under this exact name can be patched item by item: a new instance
        // under the guest's name would hide the runtime's semver-compatible one.
        if exact {
            stub_one(&mut probe, &interface, &instance, &engine, &item);
        } else {
            stub_all(&mut probe, &interface, &instance, &engine);
        }
    }
    unlinked
}

/// Whether the linker defines an instance under exactly `name` holding one of the guest's
/// items (defining it again in a copy clashes).
fn exact_name_defined<T: 'static>(
    base: &Linker<T>,
    instance: &ComponentInstance,
    engine: &Engine,
    name: &str,
) -> bool {
    let mut copy = base.clone();
    let Ok(mut defined) = copy.instance(name) else {
        return false;
    };
    instance.exports(engine).any(|(item, ty)| match ty.ty {
        ComponentItem::ComponentFunc(_) => defined
            .func_new(item, |_, _, _, _| Err(not_provided()))
            .is_err(),
        ComponentItem::Resource(_) => defined
            .resource(item, ResourceType::host::<Placeholder>(), |_, _| Ok(()))
            .is_err(),
        _ => false,
    })
}

/// Whether a function the guest lists before `failed` linked: the linker checks the guest's
/// items in order, and each function needs a definition, so the interface is here (in some
/// compatible version).
fn linked_before(instance: &ComponentInstance, engine: &Engine, failed: Option<&str>) -> bool {
    instance
        .exports(engine)
        .take_while(|(name, _)| Some(*name) != failed)
        .any(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
}

/// The resource type of stubs.
struct Placeholder;

fn not_provided() -> wasmtime::Error {
    wasmtime::format_err!("not provided by this runtime")
}

/// Stands in for every item of the guest's `interface` with trapping functions and placeholder
/// resources.
fn stub_all<T: 'static>(
    linker: &mut Linker<T>,
    interface: &str,
    instance: &ComponentInstance,
    engine: &Engine,
) {
    for (item, _) in instance.exports(engine) {
        stub_one(linker, interface, instance, engine, item);
    }
}

/// Stands in for one `item` of the guest's `interface`.
fn stub_one<T: 'static>(
    linker: &mut Linker<T>,
    interface: &str,
    instance: &ComponentInstance,
    engine: &Engine,
    item: &str,
) {
    let Ok(mut defined) = linker.instance(interface) else {
        return;
    };
    // A failure leaves the import unsatisfied; `diagnose` notices and stops.
    let _ = match instance.get_export(engine, item).map(|e| e.ty) {
        Some(ComponentItem::ComponentFunc(_)) => {
            defined.func_new(item, |_, _, _, _| Err(not_provided()))
        }
        Some(ComponentItem::Resource(_)) => {
            defined.resource(item, ResourceType::host::<Placeholder>(), |_, _| Ok(()))
        }
        _ => Ok(()),
    };
}

/// The first `quoted` name in a message.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// `func` of the component `guest` in WIT syntax, with the names its imports give its types.
pub(crate) fn signature(
    engine: &Engine,
    guest: &types::Component,
    func: &types::ComponentFunc,
) -> String {
    Describe { engine, guest }.signature(func)
}

/// Renders the guest's side of a difference in WIT terms.
struct Describe<'a> {
    engine: &'a Engine,
    guest: &'a types::Component,
}

impl Describe<'_> {
    /// What differs in `item` of the guest's `instance`, from the rest of wasmtime's error
    /// chain (`rest`: which half of a function, then the first difference). A named type
    /// already reported (it differs in every function that uses it) gives `None`.
    fn difference(
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
            runtime_side("resource type mismatch"),
            "the linker says: resource type mismatch"
        );
    }
}
