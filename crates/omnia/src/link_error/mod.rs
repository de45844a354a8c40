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
//!
//! This module probes the linker; `describe` renders what differs in WIT terms.

use std::collections::HashSet;

use anyhow::anyhow;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::{Component, Linker, ResourceType};

mod describe;

use describe::Describe;
pub(crate) use describe::{runtime_side, signature};

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
