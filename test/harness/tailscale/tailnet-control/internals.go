package main

// testcontrol.Server keeps its node table, its lock and its HTTP mux unexported, and offers no way
// to delete a node, to check more than one auth key, or to answer unknown paths without panicking.
// Reaching the few fields we need through reflect+unsafe is the smallest way to get those without
// copying testcontrol: it is pinned to the tailscale.com version the build script names, and
// mustField fails loudly at start if a field is renamed.

import (
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"unsafe"

	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

type internals struct {
	s       *testcontrol.Server
	mu      *sync.Mutex
	mux     **http.ServeMux
	nodes   *map[key.NodePublic]*tailcfg.Node
	users   *map[key.NodePublic]*tailcfg.User
	logins  *map[key.NodePublic]*tailcfg.Login
	updates reflect.Value // map[tailcfg.NodeID]chan updateType (an unexported element type)
	// msgToSend queues raw MapResponses per node, sent on the node's map stream before the next full one.
	msgToSend *map[key.NodePublic][]any
}

func mustField(s *testcontrol.Server, name string, want reflect.Type) reflect.Value {
	f := reflect.ValueOf(s).Elem().FieldByName(name)
	if !f.IsValid() {
		panic(fmt.Sprintf("testcontrol.Server has no field %q (tailscale.com version changed?)", name))
	}
	if want != nil && f.Type() != want {
		panic(fmt.Sprintf("testcontrol.Server.%s is %v, want %v", name, f.Type(), want))
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

func newInternals(s *testcontrol.Server) *internals {
	in := &internals{s: s}
	in.mu = mustField(s, "mu", reflect.TypeFor[sync.Mutex]()).Addr().Interface().(*sync.Mutex)
	in.mux = mustField(s, "mux", reflect.TypeFor[*http.ServeMux]()).Addr().Interface().(**http.ServeMux)
	in.nodes = mustField(s, "nodes", reflect.TypeFor[map[key.NodePublic]*tailcfg.Node]()).Addr().Interface().(*map[key.NodePublic]*tailcfg.Node)
	in.users = mustField(s, "users", reflect.TypeFor[map[key.NodePublic]*tailcfg.User]()).Addr().Interface().(*map[key.NodePublic]*tailcfg.User)
	in.logins = mustField(s, "logins", reflect.TypeFor[map[key.NodePublic]*tailcfg.Login]()).Addr().Interface().(*map[key.NodePublic]*tailcfg.Login)
	in.msgToSend = mustField(s, "msgToSend", reflect.TypeFor[map[key.NodePublic][]any]()).Addr().Interface().(*map[key.NodePublic][]any)
	in.updates = mustField(s, "updates", nil)
	if in.updates.Kind() != reflect.Map || in.updates.Type().Key() != reflect.TypeFor[tailcfg.NodeID]() {
		panic(fmt.Sprintf("testcontrol.Server.updates is %v", in.updates.Type()))
	}
	return in
}

// wrapMux replaces testcontrol's mux (used both for plain HTTP and inside the Noise channel) by
// handler, which gets the original to delegate to. It must run before the server serves.
func (in *internals) wrapMux(wrap func(orig *http.ServeMux) http.Handler) {
	// ServeHTTP builds the mux once; build it now so the replacement sticks.
	in.s.ServeHTTP(discardWriter{}, mustRequest("GET", "/generate_204"))
	orig := *in.mux
	m := http.NewServeMux()
	m.Handle("/", wrap(orig))
	*in.mux = m
}

// withNode runs fn on the live node (not a clone) under the server's lock, so concurrent map
// requests' writes (endpoints, Hostinfo) are not clobbered as UpdateNode would.
func (in *internals) withNode(nk key.NodePublic, fn func(n *tailcfg.Node)) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := (*in.nodes)[nk]
	if n == nil {
		return false
	}
	fn(n)
	return true
}

// deleteNode removes a node and ends its map stream, and tells every other node with PeersRemoved:
// a full netmap cannot, because a client takes an empty Peers list as "peers unchanged"
// (controlclient mapSession.updatePeersStateFromResponse), so the last peer would never go.
// testcontrol's AddRawMapResponse would queue the same message but also stop that node's automatic
// netmaps for good, hence the queue is filled here directly.
func (in *internals) deleteNode(nk key.NodePublic) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := (*in.nodes)[nk]
	if n == nil {
		return false
	}
	delete(*in.nodes, nk)
	delete(*in.users, nk)
	delete(*in.logins, nk)
	id := reflect.ValueOf(n.ID)
	if ch := in.updates.MapIndex(id); ch.IsValid() && !ch.IsNil() {
		ch.Close()
		in.updates.SetMapIndex(id, reflect.Value{})
	}
	removed := &tailcfg.MapResponse{PeersRemoved: []tailcfg.NodeID{n.ID}}
	for other, peer := range *in.nodes {
		ch := in.updates.MapIndex(reflect.ValueOf(peer.ID))
		if !ch.IsValid() || ch.IsNil() {
			continue
		}
		if *in.msgToSend == nil {
			*in.msgToSend = map[key.NodePublic][]any{}
		}
		(*in.msgToSend)[other] = append((*in.msgToSend)[other], removed)
		// Any value wakes the stream (its buffer holds one; a full one is already a pending wake-up).
		ch.TrySend(reflect.Zero(ch.Type().Elem()))
	}
	return true
}

// setDNS replaces the DNS config under the server's lock (its field is read under that lock).
func (in *internals) setDNS(cfg *tailcfg.DNSConfig) {
	in.mu.Lock()
	in.s.DNSConfig = cfg
	in.mu.Unlock()
}

// poke makes every connected node fetch a fresh netmap. SetSSHPolicy(nil) leaves the (unused) SSH
// policy as it is and wakes every map stream; testcontrol has no exported "changed" call.
func (in *internals) poke() {
	in.s.SetSSHPolicy(nil)
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

func mustRequest(method, path string) *http.Request {
	r, err := http.NewRequest(method, "http://control"+path, nil)
	if err != nil {
		panic(err)
	}
	return r
}
