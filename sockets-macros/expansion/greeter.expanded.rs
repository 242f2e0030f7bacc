// The expansion of `greeter.rs` by `#[sockets::service]`, formatted by rustfmt.
// Checked by a unit test in `src/expand.rs`; regenerate with
// `UPDATE_EXPANSION=1 cargo test -p sockets-macros`.

#[doc = " Greets people."]
pub trait Greeter: ::sockets::__private::Send + ::sockets::__private::Sync + 'static {
    #[doc = " Says hello to `name`."]
    fn hello(
        &self,
        name: String,
    ) -> impl ::sockets::__private::Future<Output = Result<String, Refusal>> + ::sockets::__private::Send;
    #[doc = " Who is asking, from the call's context."]
    fn whoami(
        &self,
        cx: &sockets::Context,
    ) -> impl ::sockets::__private::Future<Output = u64> + ::sockets::__private::Send;
    fn wave(&self) -> impl ::sockets::__private::Future<Output = ()> + ::sockets::__private::Send;
    #[doc = " A smaller copy of `image`; both travel as MessagePack `bin`."]
    fn thumbnail(
        &self,
        width: u32,
        image: Vec<u8>,
    ) -> impl ::sockets::__private::Future<Output = Vec<u8>> + ::sockets::__private::Send;
}
#[doc = "A call to a method of [`Greeter`], with its arguments: one variant per method. `Debug` prints the variant only, never the arguments."]
pub enum GreeterRequest {
    #[doc = " Says hello to `name`."]
    Hello {
        #[doc = "The argument `name`."]
        name: String,
    },
    #[doc = " Who is asking, from the call's context."]
    Whoami,
    #[doc = "Calls `greeter.wave`."]
    Wave,
    #[doc = " A smaller copy of `image`; both travel as MessagePack `bin`."]
    Thumbnail {
        #[doc = "The argument `width`."]
        width: u32,
        #[doc = "The argument `image`."]
        image: Vec<u8>,
    },
}
impl GreeterRequest {
    #[doc = r" The service's wire name and methods, as the runtime sees them."]
    pub const INFO: ::sockets::service::ServiceInfo = ::sockets::service::ServiceInfo {
        name: "greeter",
        methods: &[
            ::sockets::service::MethodInfo {
                name: "greeter.hello",
                open: false,
                notify: false,
                stream: false,
                stream_in: false,
            },
            ::sockets::service::MethodInfo {
                name: "greeter.whoami",
                open: false,
                notify: false,
                stream: false,
                stream_in: false,
            },
            ::sockets::service::MethodInfo {
                name: "greeter.wave",
                open: false,
                notify: true,
                stream: false,
                stream_in: false,
            },
            ::sockets::service::MethodInfo {
                name: "greeter.thumbnail",
                open: false,
                notify: false,
                stream: false,
                stream_in: false,
            },
        ],
    };
}
impl GreeterRequest {
    #[doc = r" The service's descriptor: its wire name, docs, and each method's"]
    #[doc = r" kind, parameters, return and error types as they travel (see"]
    #[doc = r" `sockets::descriptor`). Traced from the types on first use, then shared."]
    pub fn descriptor() -> &'static ::sockets::descriptor::ServiceDescriptor {
        static DESCRIPTOR: ::sockets::__private::OnceLock<
            ::sockets::descriptor::ServiceDescriptor,
        > = ::sockets::__private::OnceLock::new();
        DESCRIPTOR.get_or_init(|| {
            #[allow(unused_imports)]
            use ::sockets::__private::{TraceOther as _, TraceSerde as _};
            let mut methods = ::sockets::__private::Vec::new();
            methods.push(::sockets::__private::describe_method(
                "greeter.hello",
                false,
                false,
                "Says hello to `name`.",
                ::sockets::__private::From::from([(
                    "name",
                    (&::sockets::__private::Probe::<String>::new()).trace_type(),
                )]),
                ::sockets::__private::Some(
                    (&::sockets::__private::Probe::<Result<String, Refusal>>::new()).trace_type(),
                ),
            ));
            methods.push(::sockets::__private::describe_method(
                "greeter.whoami",
                false,
                false,
                "Who is asking, from the call's context.",
                ::sockets::__private::From::from([]),
                ::sockets::__private::Some(
                    (&::sockets::__private::Probe::<u64>::new()).trace_type(),
                ),
            ));
            methods.push(::sockets::__private::describe_method(
                "greeter.wave",
                true,
                false,
                "",
                ::sockets::__private::From::from([]),
                ::sockets::__private::None,
            ));
            methods.push(::sockets::__private::describe_method(
                "greeter.thumbnail",
                false,
                false,
                "A smaller copy of `image`; both travel as MessagePack `bin`.",
                ::sockets::__private::From::from([
                    (
                        "width",
                        (&::sockets::__private::Probe::<u32>::new()).trace_type(),
                    ),
                    (
                        "image",
                        (&::sockets::__private::Probe::<::sockets::__private::Bin>::new())
                            .trace_type(),
                    ),
                ]),
                ::sockets::__private::Some(
                    (&::sockets::__private::Probe::<::sockets::__private::Bin>::new()).trace_type(),
                ),
            ));
            ::sockets::__private::describe_service("greeter", "Greets people.", methods)
        })
    }
}
impl ::sockets::service::ServiceRequest for GreeterRequest {
    type Response = GreeterResponse;
    fn method(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "greeter.hello",
            Self::Whoami => "greeter.whoami",
            Self::Wave => "greeter.wave",
            Self::Thumbnail { .. } => "greeter.thumbnail",
        }
    }
    fn is_notify(&self) -> bool {
        match self {
            Self::Hello { .. } => false,
            Self::Whoami => false,
            Self::Wave => true,
            Self::Thumbnail { .. } => false,
        }
    }
    fn is_stream(&self) -> bool {
        match self {
            Self::Hello { .. } => false,
            Self::Whoami => false,
            Self::Wave => false,
            Self::Thumbnail { .. } => false,
        }
    }
    fn encode_args(
        &self,
        out: &mut ::sockets::__private::Vec<u8>,
    ) -> ::sockets::__private::Result<(), ::sockets::error::CodecError> {
        match self {
            Self::Hello { name } => ::sockets::__private::encode_args(&(name,), out),
            Self::Whoami => ::sockets::__private::encode_args(&::sockets::__private::NO_ARGS, out),
            Self::Wave => ::sockets::__private::encode_args(&::sockets::__private::NO_ARGS, out),
            Self::Thumbnail { width, image } => {
                ::sockets::__private::encode_args(&(width, ::sockets::__private::bin(image)), out)
            }
        }
    }
    fn decode(
        method: &str,
        args: &[u8],
    ) -> ::sockets::__private::Result<Self, ::sockets::service::DispatchError> {
        match method {
            "greeter.hello" => {
                let (name,) = ::sockets::__private::decode_args(method, args)?;
                ::sockets::__private::Ok(Self::Hello { name })
            }
            "greeter.whoami" => {
                ::sockets::__private::decode_args::<::sockets::__private::NoArgs>(method, args)?;
                ::sockets::__private::Ok(Self::Whoami)
            }
            "greeter.wave" => {
                ::sockets::__private::decode_args::<::sockets::__private::NoArgs>(method, args)?;
                ::sockets::__private::Ok(Self::Wave)
            }
            "greeter.thumbnail" => {
                let (width, image): (_, ::sockets::__private::Bin) =
                    ::sockets::__private::decode_args(method, args)?;
                let image = ::sockets::__private::from_bin(image);
                ::sockets::__private::Ok(Self::Thumbnail { width, image })
            }
            _ => ::sockets::__private::Err(::sockets::__private::unknown_method(method)),
        }
    }
}
impl ::sockets::__private::Debug for GreeterRequest {
    fn fmt(
        &self,
        f: &mut ::sockets::__private::fmt::Formatter<'_>,
    ) -> ::sockets::__private::fmt::Result {
        match self {
            Self::Hello { .. } => f.debug_struct("Hello").finish_non_exhaustive(),
            Self::Whoami => f.write_str("Whoami"),
            Self::Wave => f.write_str("Wave"),
            Self::Thumbnail { .. } => f.debug_struct("Thumbnail").finish_non_exhaustive(),
        }
    }
}
#[doc = "The reply to a call of [`Greeter`]: one variant per method, holding its return value. `Debug` prints the variant only, never the value."]
#[allow(dead_code)]
pub enum GreeterResponse {
    #[doc = "What `greeter.hello` returned."]
    Hello(Result<String, Refusal>),
    #[doc = "What `greeter.whoami` returned."]
    Whoami(u64),
    #[doc = "What `greeter.wave` returned."]
    Wave(()),
    #[doc = "What `greeter.thumbnail` returned."]
    Thumbnail(Vec<u8>),
}
impl ::sockets::service::ServiceResponse for GreeterResponse {
    fn decode(method: &str, value: &[u8]) -> ::sockets::__private::Result<Self, ::sockets::Error> {
        match method {
            "greeter.hello" => ::sockets::__private::decode_reply(method, value).map(Self::Hello),
            "greeter.whoami" => ::sockets::__private::decode_reply(method, value).map(Self::Whoami),
            "greeter.wave" => ::sockets::__private::decode_reply(method, value).map(Self::Wave),
            "greeter.thumbnail" => ::sockets::__private::decode_reply(method, value)
                .map(::sockets::__private::from_bin)
                .map(Self::Thumbnail),
            _ => ::sockets::__private::Err(::sockets::__private::unknown_reply(method)),
        }
    }
}
impl ::sockets::__private::Debug for GreeterResponse {
    fn fmt(
        &self,
        f: &mut ::sockets::__private::fmt::Formatter<'_>,
    ) -> ::sockets::__private::fmt::Result {
        match self {
            Self::Hello(_) => f.debug_tuple("Hello").finish_non_exhaustive(),
            Self::Whoami(_) => f.debug_tuple("Whoami").finish_non_exhaustive(),
            Self::Wave(_) => f.debug_tuple("Wave").finish_non_exhaustive(),
            Self::Thumbnail(_) => f.debug_tuple("Thumbnail").finish_non_exhaustive(),
        }
    }
}
#[doc = "Serves an implementation of [`Greeter`]: register it with a server or client as a service."]
#[derive(:: sockets :: __private :: Clone, :: sockets :: __private :: Debug)]
pub struct GreeterServer<T> {
    inner: T,
}
impl<T: Greeter> GreeterServer<T> {
    #[doc = r" Wraps `inner` to serve it."]
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
    #[doc = r" The implementation being served."]
    pub fn inner(&self) -> &T {
        &self.inner
    }
    #[doc = r" Unwraps the implementation."]
    pub fn into_inner(self) -> T {
        self.inner
    }
}
impl<T: Greeter> ::sockets::Service for GreeterServer<T> {
    fn info(&self) -> &'static ::sockets::service::ServiceInfo {
        &GreeterRequest::INFO
    }
    fn descriptor(
        &self,
    ) -> ::sockets::__private::Option<&'static ::sockets::descriptor::ServiceDescriptor> {
        ::sockets::__private::Some(GreeterRequest::descriptor())
    }
    fn dispatch(
        self: ::sockets::__private::Arc<Self>,
        cx: ::sockets::Context,
        method: &str,
        args: &[u8],
    ) -> ::sockets::__private::Result<
        ::sockets::service::HandlerFuture,
        ::sockets::service::DispatchError,
    > {
        let _ = &cx;
        let request = <GreeterRequest as ::sockets::service::ServiceRequest>::decode(method, args)?;
        match request {
            GreeterRequest::Hello { name } => {
                ::sockets::__private::Ok(::sockets::__private::handler(async move {
                    self.inner.hello(name).await
                }))
            }
            GreeterRequest::Whoami => {
                ::sockets::__private::Ok(::sockets::__private::handler(async move {
                    self.inner
                        .whoami(::sockets::__private::CallContext::by_ref(&cx))
                        .await
                }))
            }
            GreeterRequest::Wave => {
                ::sockets::__private::Ok(::sockets::__private::handler(async move {
                    self.inner.wave().await
                }))
            }
            GreeterRequest::Thumbnail { width, image } => {
                ::sockets::__private::Ok(::sockets::__private::handler(async move {
                    ::sockets::__private::to_bin(self.inner.thumbnail(width, image).await)
                }))
            }
        }
    }
}
#[doc = "Calls [`Greeter`] on the other side of a connection: one method per service method, each returning `Result<T, sockets::Error>` where `T` is the declared return type."]
#[derive(:: sockets :: __private :: Clone, :: sockets :: __private :: Debug)]
pub struct GreeterClient {
    peer: ::sockets::Peer,
    options: ::sockets::CallOptions,
}
impl GreeterClient {
    #[doc = r" A client that calls through `peer` with default options."]
    pub fn new(peer: ::sockets::Peer) -> Self {
        Self {
            peer,
            options: ::sockets::__private::Default::default(),
        }
    }
    #[doc = r" A copy of this client that sends its calls with `options`."]
    pub fn with_options(&self, options: ::sockets::CallOptions) -> Self {
        Self {
            peer: ::sockets::__private::Clone::clone(&self.peer),
            options,
        }
    }
    #[doc = r" A copy of this client whose calls wait at most `timeout` for their reply."]
    pub fn with_timeout(&self, timeout: ::sockets::__private::Duration) -> Self {
        self.with_options(::sockets::CallOptions {
            timeout: ::sockets::__private::Some(timeout),
            ..self.options
        })
    }
    #[doc = r" A copy of this client whose streams grant `window` (see"]
    #[doc = r" `sockets::Window`); otherwise a streaming method's own window applies."]
    pub fn with_window(&self, window: ::sockets::Window) -> Self {
        self.with_options(::sockets::CallOptions {
            window: ::sockets::__private::Some(window),
            ..self.options
        })
    }
    #[doc = r" A copy of this client whose streams re-open themselves after a"]
    #[doc = r" reconnect and yield `sockets::Feed::Gap` where the gap was (see"]
    #[doc = r" `sockets::CallOptions::resubscribe`); for streams of `Feed<T>`."]
    pub fn with_resubscribe(&self) -> Self {
        self.with_options(::sockets::CallOptions {
            resubscribe: true,
            ..self.options
        })
    }
    #[doc = r" The peer this client calls."]
    pub fn peer(&self) -> &::sockets::Peer {
        &self.peer
    }
    #[doc = r" The descriptor of the service this client calls, for"]
    #[doc = r" `ClientBuilder::expect_services`: the server's must be compatible."]
    pub fn descriptor() -> &'static ::sockets::descriptor::ServiceDescriptor {
        GreeterRequest::descriptor()
    }
    #[doc = " Says hello to `name`."]
    pub async fn hello(
        &self,
        name: impl ::sockets::__private::Into<String>,
    ) -> ::sockets::__private::Result<Result<String, Refusal>, ::sockets::Error> {
        ::sockets::__private::call(
            &self.peer,
            "greeter.hello",
            &(::sockets::__private::Into::<String>::into(name),),
            self.options,
        )
        .await
    }
    #[doc = " Who is asking, from the call's context."]
    pub async fn whoami(&self) -> ::sockets::__private::Result<u64, ::sockets::Error> {
        ::sockets::__private::call(
            &self.peer,
            "greeter.whoami",
            &::sockets::__private::NO_ARGS,
            self.options,
        )
        .await
    }
    #[doc = "Sends `greeter.wave` as a notification: no reply; resolves once it is queued."]
    pub async fn wave(&self) -> ::sockets::__private::Result<(), ::sockets::Error> {
        ::sockets::__private::notify(&self.peer, "greeter.wave", &::sockets::__private::NO_ARGS)
            .await
    }
    #[doc = " A smaller copy of `image`; both travel as MessagePack `bin`."]
    pub async fn thumbnail(
        &self,
        width: u32,
        image: Vec<u8>,
    ) -> ::sockets::__private::Result<Vec<u8>, ::sockets::Error> {
        ::sockets::__private::call(
            &self.peer,
            "greeter.thumbnail",
            &(width, ::sockets::__private::bin(&image)),
            self.options,
        )
        .await
        .map(::sockets::__private::from_bin)
    }
}
impl ::sockets::__private::From<::sockets::Peer> for GreeterClient {
    fn from(peer: ::sockets::Peer) -> Self {
        Self::new(peer)
    }
}
const _: () = {
    {
        ::sockets::__private::assert_arg::<String>();
        ::sockets::__private::assert_reply::<Result<String, Refusal>>();
    }
    {
        ::sockets::__private::assert_reply::<u64>();
    }
    {
        ::sockets::__private::assert_arg::<u32>();
        ::sockets::__private::assert_arg::<Vec<u8>>();
        ::sockets::__private::assert_reply::<Vec<u8>>();
    }
};
