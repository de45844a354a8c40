//! The `runtime!` macro (used as `omnia::runtime!`).
//!
//! ```ignore
//! omnia::runtime!({
//!     "http": WasiHttpCtx,
//!     #[cfg(feature = "keyvalue")]
//!     "keyvalue": KeyValueDefault,
//! });
//! ```
//!
//! expands, in the calling module, to:
//!
//! * `Cli`: a `clap` parser whose subcommands are `omnia::Command` (`run`, and `compile` with
//!   the `jit` feature), with `Cli::parse()` so callers need not import `clap::Parser`;
//! * `StoreCtx`: the store data, Omnia's core plus one field per entry, implementing
//!   `WasiView`, `omnia::StoreView` and `omnia::HostView<Entry>` for each entry;
//! * `Options`: every entry's `Backend::Options`, all read from the environment (and `run`
//!   flags) before the component is compiled, so every bad setting is reported at once;
//! * `Capabilities`: the connected entries, implementing `omnia::Capabilities` (connect the
//!   `Backend` of each entry some guest uses (`Host::used_by`), link each `Host`, bind and
//!   start each `Server`);
//! * `async fn runtime_run(cli: Cli) -> anyhow::Result<()>`.
//!
//! Keys are the capability names of the Omnia specification; `http` and `messaging` are
//! triggers (their entry type must also implement `omnia::Server`). Attributes on an entry
//! (typically `#[cfg(...)]`) are copied onto everything generated for it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, LitStr, Token, Type, braced};

/// The capability keys `runtime!` accepts, whether each is a trigger, and the heading of its
/// settings in `omnia run --help`.
const KEYS: &[(&str, bool, &str)] = &[
    ("http", true, "HTTP"),
    ("keyvalue", false, "Key-value"),
    ("messaging", true, "Messaging"),
    ("config", false, "Config"),
    ("otel", false, "Telemetry (OpenTelemetry)"),
    ("sql", false, "SQL"),
];

/// Declares a runtime's capabilities and generates its `Cli` and `runtime_run`.
/// See the crate documentation.
#[proc_macro]
pub fn runtime(input: TokenStream) -> TokenStream {
    match syn::parse::<Input>(input).and_then(|input| expand(&input)) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

struct Entry {
    attrs: Vec<Attribute>,
    key: LitStr,
    ty: Type,
}

struct Input {
    entries: Vec<Entry>,
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let key: LitStr = input.parse().map_err(|err| {
            syn::Error::new(
                err.span(),
                "expected an entry such as `\"http\": WasiHttpCtx` (a string key, a colon, a type)",
            )
        })?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse().map_err(|_| {
            syn::Error::new(
                input.span(),
                format!(
                    "entry \"{}\": expected a type (such as `WasiHttpCtx`) after the colon",
                    key.value()
                ),
            )
        })?;
        Ok(Self { attrs, key, ty })
    }
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        braced!(content in input);
        let entries = Punctuated::<Entry, Token![,]>::parse_terminated(&content)?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the `{ ... }` of runtime!"));
        }
        Ok(Self {
            entries: entries.into_iter().collect(),
        })
    }
}

fn check(input: &Input) -> syn::Result<()> {
    if input.entries.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "runtime! needs at least one entry, such as `\"http\": WasiHttpCtx`",
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for entry in &input.entries {
        let key = entry.key.value();
        if !KEYS.iter().any(|(k, _, _)| *k == key) {
            let known: Vec<_> = KEYS.iter().map(|(k, _, _)| format!("\"{k}\"")).collect();
            return Err(syn::Error::new(
                entry.key.span(),
                format!(
                    "unknown capability \"{key}\": expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        if seen.contains(&key) {
            return Err(syn::Error::new(
                entry.key.span(),
                format!("duplicate capability \"{key}\": each key may appear once"),
            ));
        }
        seen.push(key);
    }
    Ok(())
}

/// The pieces generated for each entry, gathered per position in the output.
#[derive(Default)]
struct Parts {
    fields: Vec<TokenStream2>,
    option_fields: Vec<TokenStream2>,
    host_views: Vec<TokenStream2>,
    names: Vec<TokenStream2>,
    describes: Vec<TokenStream2>,
    settings: Vec<TokenStream2>,
    reads: Vec<TokenStream2>,
    layers: Vec<TokenStream2>,
    shutdowns: Vec<TokenStream2>,
    connects: Vec<TokenStream2>,
    links: Vec<TokenStream2>,
    clones: Vec<TokenStream2>,
    scoped: Vec<TokenStream2>,
    unconnected: Vec<TokenStream2>,
    exported: Vec<TokenStream2>,
    starts: Vec<TokenStream2>,
}

/// Whether the capability `name` is a trigger, and the heading of its settings.
fn key_facts(name: &str) -> (bool, &'static str) {
    KEYS.iter()
        .find_map(|(k, trigger, title)| (*k == name).then_some((*trigger, *title)))
        .unwrap_or((false, "Other"))
}

fn parts(input: &Input) -> Parts {
    let omnia = quote!(::omnia);
    let mut p = Parts::default();

    for entry in &input.entries {
        let Entry { attrs, key, ty } = entry;
        let name = key.value();
        let field = format_ident!("{}", name);
        let (is_trigger, title) = key_facts(&name);
        let unused = format!(
            "the \"{name}\" capability is connected for every component that imports it, and \
             only such components can call it"
        );

        p.fields.push(quote! { #(#attrs)* #field: Option<#ty>, });
        p.option_fields
            .push(quote! { #(#attrs)* #field: <#ty as #omnia::Backend>::Options, });
        p.host_views.push(quote! {
            #(#attrs)*
            impl #omnia::HostView<#ty> for StoreCtx {
                fn host(&mut self) -> (&mut #ty, &mut #omnia::StoreCore) {
                    (self.#field.as_mut().expect(#unused), &mut self.core)
                }
            }
        });
        p.names.push(quote! { #(#attrs)* names.push(#key); });
        p.describes.push(quote! {
            #(#attrs)*
            described.push({
                let backends = <#ty as #omnia::Backend>::backends();
                if backends.is_empty() {
                    #key.to_string()
                } else {
                    format!("{}[{}]", #key, backends.join(","))
                }
            });
        });
        p.settings.push(quote! {
            #(#attrs)*
            groups.push(#omnia::SettingGroup::new(#title, <<#ty as #omnia::Backend>::Options as #omnia::FromEnv>::settings()));
        });
        p.reads.push(quote! {
            #(#attrs)*
            #field: <<#ty as #omnia::Backend>::Options as #omnia::FromEnv>::from_env()?,
        });
        p.layers.push(quote! {
            #(#attrs)*
            layers.extend(<#ty as #omnia::Backend>::tracing_layer(&options.#field)?);
        });
        p.shutdowns.push(quote! {
            #(#attrs)*
            if let Some(entry) = &self.#field {
                <#ty as #omnia::Backend>::shutdown(entry).await;
            }
        });
        p.connects.push(quote! {
            #(#attrs)*
            #field: if components.iter().any(|component| {
                <#ty as #omnia::Host<StoreCtx>>::used_by(component.engine(), component)
            }) {
                Some(
                    <#ty as #omnia::Backend>::connect_with(options.#field)
                        .await
                        .map_err(|err| {
                            err.context(concat!("cannot start the \"", #key, "\" capability"))
                        })?,
                )
            } else {
                None
            },
        });
        p.links.push(quote! {
            #(#attrs)*
            <#ty as #omnia::Host<StoreCtx>>::add_to_linker(linker, component)?;
        });
        p.clones
            .push(quote! { #(#attrs)* #field: self.#field.clone(), });
        guest_parts(&mut p, entry);
        if is_trigger {
            trigger_parts(&mut p, entry);
        }
    }
    p
}

/// What every entry adds for the guests of an application: its restriction to a guest's
/// grants ([`Backend::for_guest`]) and the check that a reloaded guest uses only connected
/// entries.
fn guest_parts(p: &mut Parts, entry: &Entry) {
    let omnia = quote!(::omnia);
    let private = quote!(::omnia::__private);
    let Entry { attrs, key, ty } = entry;
    let field = format_ident!("{}", key.value());
    p.unconnected.push(quote! {
        #(#attrs)*
        if self.#field.is_none()
            && <#ty as #omnia::Host<StoreCtx>>::used_by(component.engine(), component)
        {
            names.push(#key);
        }
    });
    p.scoped.push(quote! {
        #(#attrs)*
        #field: match &self.#field {
            Some(entry) => Some(
                <#ty as #omnia::Backend>::for_guest(
                    entry,
                    &#omnia::GuestScope { id, grants: grants.get(#key), shared },
                )
                .map_err(|err| #private::anyhow::anyhow!("grants.{}: {err:#}", #key))?,
            ),
            None if grants.contains_key(#key) => {
                return Err(#private::anyhow::anyhow!(
                    "grants.{}: no guest of the application uses this capability (none imports \
                     its interfaces), so there is nothing to grant; remove the table",
                    #key
                ));
            }
            None => None,
        },
    });
}

/// What a trigger entry adds: the check of its export, and the start of its server.
fn trigger_parts(p: &mut Parts, entry: &Entry) {
    let omnia = quote!(::omnia);
    let Entry { attrs, key, ty } = entry;
    let field = format_ident!("{}", key.value());
    p.exported.push(quote! {
        #(#attrs)*
        if <#ty as #omnia::Server<#omnia::Runtime<StoreCtx>>>::exported_by(engine, component) {
            names.push(#key);
        }
    });
    p.starts.push(quote! {
        #(#attrs)*
        if let Some(server) = &self.#field
            && app.guests().iter().any(|guest| {
                <#ty as #omnia::Server<#omnia::Runtime<StoreCtx>>>::exported_by(
                    #omnia::State::engine(guest),
                    #omnia::State::instance_pre(guest).component(),
                )
            })
        {
            let server = server.clone();
            let app = app.clone();
            let shutdown = shutdown.clone();
            triggers.push(#omnia::Trigger {
                name: #key,
                bind: Box::pin(async move {
                    #omnia::Server::<#omnia::Runtime<StoreCtx>>::bind(&server, app, shutdown).await
                }),
            });
        }
    });
}

/// `Cli` and `StoreCtx` with its views.
fn cli_and_store(parts: &Parts) -> TokenStream2 {
    let omnia = quote!(::omnia);
    let private = quote!(::omnia::__private);
    let Parts {
        fields, host_views, ..
    } = parts;
    quote! {
        /// Command line of this runtime: `run` (with a flag for each main setting) and (with
        /// the `jit` feature) `compile`.
        #[derive(#private::clap::Parser, Debug)]
        #[command(version = #omnia::cli::version(<Capabilities as #omnia::Capabilities>::profile(), &<Capabilities as #omnia::Capabilities>::describe()))]
        #[command(name = match option_env!("CARGO_BIN_NAME") { Some(name) => name, None => env!("CARGO_PKG_NAME") })]
        #[command(about = "Runs WebAssembly components with host services.")]
        pub struct Cli {
            /// What to do.
            #[command(subcommand)]
            pub command: #omnia::Command,
        }

        impl Cli {
            /// Parses the process's arguments (exits with a usage message on bad input).
            pub fn parse() -> Self {
                #omnia::cli::parse::<Self>(&<Capabilities as #omnia::Capabilities>::settings())
            }
        }

        /// Store data of this runtime: Omnia's core plus one field per capability the
        /// component uses.
        pub struct StoreCtx {
            core: #omnia::StoreCore,
            #(#fields)*
        }

        impl #private::wasmtime_wasi::WasiView for StoreCtx {
            fn ctx(&mut self) -> #private::wasmtime_wasi::WasiCtxView<'_> {
                self.core.wasi_view()
            }
        }

        impl #omnia::StoreView for StoreCtx {
            fn core(&mut self) -> &mut #omnia::StoreCore {
                &mut self.core
            }
        }

        #(#host_views)*

    }
}

/// The `Options` and `Capabilities` structs.
fn capability_structs(parts: &Parts) -> TokenStream2 {
    let Parts {
        fields,
        option_fields,
        ..
    } = parts;
    quote! {
        /// The options of every capability, read from the environment.
        pub struct Options {
            #(#option_fields)*
        }

        /// The connected capabilities of this runtime (`None` for those the component does
        /// not use).
        #[derive(Clone)]
        pub struct Capabilities {
            #(#fields)*
        }
    }
}

/// `Options`, `Capabilities` and its `omnia::Capabilities` implementation.
/// The methods of `Capabilities` that describe the runtime: its entries, profile, settings.
fn description(parts: &Parts) -> TokenStream2 {
    let omnia = quote!(::omnia);
    let Parts {
        names,
        describes,
        settings,
        ..
    } = parts;
    quote! {
        fn names() -> Vec<&'static str> {
                let mut names = Vec::new();
                #(#names)*
                names
            }

            fn profile() -> Option<&'static str> {
                // Set by the profile build (`cargo xtask dist`, the Nix flake).
                option_env!("OMNIA_PROFILE")
            }

            fn describe() -> Vec<String> {
                let mut described = Vec::new();
                #(#describes)*
                described
            }

            fn settings() -> Vec<#omnia::SettingGroup> {
                let mut groups = vec![#omnia::SettingGroup {
                    title: "Runtime and limits",
                    settings: <#omnia::RuntimeConfig as #omnia::FromEnv>::settings(),
                }];
                #(#settings)*
                #omnia::SettingGroup::each_once(groups)
            }
    }
}

fn capabilities_impl(parts: &Parts) -> TokenStream2 {
    let omnia = quote!(::omnia);
    let private = quote!(::omnia::__private);
    let structs = capability_structs(parts);
    let described = description(parts);
    let Parts {
        reads,
        layers,
        shutdowns,
        connects,
        links,
        clones,
        scoped,
        unconnected,
        exported,
        starts,
        ..
    } = parts;
    quote! {
        #structs

        impl #omnia::Capabilities for Capabilities {
            type StoreCtx = StoreCtx;
            type Options = Options;

            #described

            fn options() -> #private::anyhow::Result<Options> {
                Ok(Options { #(#reads)* })
            }

            #[allow(unused_mut)]
            fn tracing_layers(
                options: &Options,
            ) -> #private::anyhow::Result<Vec<#omnia::telemetry::BoxedLayer>> {
                let mut layers = Vec::new();
                #(#layers)*
                Ok(layers)
            }

            async fn shutdown(&self) {
                #(#shutdowns)*
            }

            #[allow(unused_variables)]
            async fn connect(
                options: Options,
                components: &[#private::wasmtime::component::Component],
            ) -> #private::anyhow::Result<Self> {
                Ok(Self { #(#connects)* })
            }

            #[allow(unused_variables)]
            fn add_to_linker(
                linker: &mut #private::wasmtime::component::Linker<StoreCtx>,
                component: &#private::wasmtime::component::Component,
            ) -> #private::anyhow::Result<()> {
                #(#links)*
                Ok(())
            }

            fn for_guest(
                &self,
                id: &str,
                grants: &::std::collections::BTreeMap<String, #private::toml::Table>,
                shared: bool,
            ) -> #private::anyhow::Result<Self> {
                Ok(Self { #(#scoped)* })
            }

            fn store_ctx(&self, core: #omnia::StoreCore) -> StoreCtx {
                StoreCtx { core, #(#clones)* }
            }

            #[allow(unused_mut, unused_variables)]
            #[allow(unused_mut)]
            fn unconnected(
                &self,
                component: &#private::wasmtime::component::Component,
            ) -> Vec<&'static str> {
                let mut names = Vec::new();
                #(#unconnected)*
                names
            }

            fn exported_triggers(
                engine: &#private::wasmtime::Engine,
                component: &#private::wasmtime::component::Component,
            ) -> Vec<&'static str> {
                let mut names = Vec::new();
                #(#exported)*
                names
            }

            #[allow(unused_mut, unused_variables)]
            fn triggers(
                &self,
                app: &#omnia::Application<#omnia::Runtime<StoreCtx>>,
                shutdown: &#omnia::Shutdown,
            ) -> Vec<#omnia::Trigger> {
                let mut triggers = Vec::new();
                #(#starts)*
                triggers
            }
        }

    }
}

fn expand(input: &Input) -> syn::Result<TokenStream2> {
    check(input)?;
    let parts = parts(input);
    let cli = cli_and_store(&parts);
    let capabilities = capabilities_impl(&parts);
    let omnia = quote!(::omnia);
    let private = quote!(::omnia::__private);
    let items = quote! {
        #cli
        #capabilities

        /// Runs the command line: serve a component's triggers, run a command component, or
        /// precompile one.
        pub async fn runtime_run(cli: Cli) -> #private::anyhow::Result<()> {
            #omnia::run::<Capabilities>(cli.command).await
        }
    };
    // clap's derive names `clap::...` paths, so the items live in a module that imports clap
    // from omnia (the caller need not depend on clap) and sees the caller's entry types.
    Ok(quote! {
        #[doc(hidden)]
        #[allow(unused_imports)]
        mod __omnia_runtime {
            use super::*;
            use #private::clap;

            #items
        }
        pub use __omnia_runtime::{Capabilities, Cli, Options, StoreCtx, runtime_run};
    })
}
