// as_headers: a proxy-wasm plugin written with the AssemblyScript SDK (@solo-io/proxy-runtime),
// the same behaviour as examples/plugins/add_headers + deny_header, to show that Strait runs a
// second SDK's output unchanged.
//
// Configuration (a string, as Envoy's `configuration`): the name of the request header that
// makes the plugin answer 403 itself; empty means `x-deny`. Every request that goes on gets
// `x-as-request: seen`, every response `x-as-plugin: assemblyscript`. Root id: `as_headers`.

export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, GrpcStatusValues,
  HeaderPair, stream_context, send_local_response,
} from "@solo-io/proxy-runtime";

class HeadersRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Headers(context_id, this);
  }
}

class Headers extends Context {
  constructor(context_id: u32, root_context: HeadersRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let deny = this.root_context.getConfiguration();
    if (deny == "") {
      deny = "x-deny";
    }
    // The SDK reads a missing header as "".
    if (stream_context.headers.request.get(deny) != "") {
      let headers: HeaderPair[] = [
        new HeaderPair(String.UTF8.encode("x-denied-by"), String.UTF8.encode("as_headers")),
        new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain")),
      ];
      send_local_response(403, "denied by as_headers", String.UTF8.encode("denied by an AssemblyScript plugin\n"),
        headers, GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-as-request", "seen");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-plugin", "assemblyscript");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => { return new HeadersRoot(context_id); }, "as_headers");
