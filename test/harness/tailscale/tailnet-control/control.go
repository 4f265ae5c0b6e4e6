package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/tsaddr"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

// authKey is a key the admin API minted; the only kind of key registration accepts.
type authKey struct {
	ID            string
	Secret        string
	Created       time.Time
	Expires       time.Time
	Description   string
	Reusable      bool
	Ephemeral     bool
	Preauthorized bool
	Tags          []string
	// Used is set once a single-use key registered a node (the API then reports it invalid).
	Used bool
}

// nodeMeta is what control knows about a node beyond testcontrol's tailcfg.Node.
type nodeMeta struct {
	key       key.NodePublic
	id        tailcfg.NodeID
	keyID     string
	ephemeral bool
	created   time.Time
	lastSeen  time.Time
	streams   int
	baseCaps  tailcfg.NodeCapMap

	servicesHash  string
	servicesKnown bool
	services      []*tailcfg.VIPService // as the node last answered GET /vip-services
	refreshing    bool
	refreshAgain  bool

	appliedCaps   string
	appliedRoutes string
}

// service is a Tailscale Service defined through the admin API; body keeps every field the API
// client sent (PUT replaces the whole object), addrs are parsed from it.
type service struct {
	name  string
	addrs []netip.Addr
	body  map[string]any
}

type control struct {
	s                *testcontrol.Server
	in               *internals
	domain           string
	ephemeralTimeout time.Duration
	// deviceApproval: nodes joining with a key that is not preauthorized are not authorized (the
	// tailnet setting "device approval"; off by default, as on a new tailnet).
	deviceApproval bool

	mu          sync.Mutex
	keys        map[string]*authKey
	keyCounter  int
	nodes       map[key.NodePublic]*nodeMeta
	nextNodeID  tailcfg.NodeID
	services    map[string]*service
	svcCounter  int
	recomputeMu sync.Mutex
	appliedDNS  string
	// derp is the in-process relay, for the admin API's /debug endpoints (nil in none).
	derp *derpserver.Server
}

func newControl(s *testcontrol.Server, domain string, ephemeralTimeout time.Duration) *control {
	c := &control{
		s:                s,
		in:               newInternals(s),
		domain:           domain,
		ephemeralTimeout: ephemeralTimeout,
		keys:             map[string]*authKey{},
		nodes:            map[key.NodePublic]*nodeMeta{},
		services:         map[string]*service{},
	}
	s.HoldMapRequest = c.holdMap
	c.in.wrapMux(c.dispatch)
	return c
}

// testcontrol's own routes; anything else would reach its serveUnhandled, which panics the process.
var passThrough = map[string]bool{
	"/key":                     true,
	"/ts2021":                  true,
	"/generate_204":            true,
	"/machine/map":             true,
	"/machine/set-dns":         true,
	"/machine/update-health":   true,
	"/machine/tka/init/begin":  true,
	"/machine/tka/init/finish": true,
	"/machine/tka/bootstrap":   true,
	"/machine/tka/sync/offer":  true,
	"/machine/tka/sign":        true,
	"/machine/webclient/init/": true,
	"/machine/webclient/wait/": true,
	"/c2n/":                    true,
}

func (c *control) dispatch(orig *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/machine/register" {
			c.serveRegister(w, r, orig)
			return
		}
		if passThrough[p] || strings.HasPrefix(p, "/c2n/") || strings.HasPrefix(p, "/machine/webclient/") {
			orig.ServeHTTP(w, r)
			return
		}
		log.Printf("control: %s %s: not handled, answering 404", r.Method, p)
		http.Error(w, "not handled by the test control server", http.StatusNotFound)
	})
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func writeRegisterError(w http.ResponseWriter, msg string) {
	b, _ := json.Marshal(tailcfg.RegisterResponse{Error: msg})
	w.WriteHeader(200)
	w.Write(b)
}

// serveRegister admits a new node only with a key the admin API minted, then gives it our node
// ID (never reused, unlike testcontrol's len(nodes)+1), addresses and the key's tags before the
// node sees the answer.
func (c *control) serveRegister(w http.ResponseWriter, r *http.Request, orig http.Handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var req tailcfg.RegisterRequest
	if err := json.Unmarshal(body, &req); err != nil || req.NodeKey.IsZero() || req.Version == 0 {
		http.Error(w, "bad register request", 400)
		return
	}
	known := c.s.Node(req.NodeKey) != nil || (!req.OldNodeKey.IsZero() && c.s.Node(req.OldNodeKey) != nil)
	var k *authKey
	if !known {
		secret := ""
		if req.Auth != nil {
			secret = req.Auth.AuthKey
		}
		var msg string
		k, msg = c.takeKey(secret)
		if k == nil {
			log.Printf("control: register of %s refused: %s", req.NodeKey.ShortString(), msg)
			writeRegisterError(w, msg)
			return
		}
	}
	logout := known && !req.Expiry.IsZero() && req.Expiry.Before(time.Now())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := &recorder{header: http.Header{}}
	orig.ServeHTTP(rec, r)
	if rec.status == 200 {
		switch {
		case k != nil:
			c.adopt(&req, k)
			if c.needsApproval(k) {
				rec.body = *bytes.NewBuffer(unauthorized(rec.body.Bytes()))
			}
		case logout:
			c.logout(req.NodeKey)
		}
	}
	maps.Copy(w.Header(), rec.header)
	if rec.status == 0 {
		rec.status = 200
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

// takeKey returns the minted key with this secret when it may register a node (consuming a
// single-use key), or nil and why not.
func (c *control) takeKey(secret string) (*authKey, string) {
	if secret == "" {
		return nil, "this tailnet admits nodes only with an auth key (tailscale up --authkey)"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.keys {
		if k.Secret != secret {
			continue
		}
		switch {
		case time.Now().After(k.Expires):
			return nil, "invalid key: key expired"
		case k.Used && !k.Reusable:
			return nil, "invalid key: key already used"
		}
		k.Used = true
		return k, ""
	}
	return nil, "invalid key: unable to validate API key"
}

func (c *control) adopt(req *tailcfg.RegisterRequest, k *authKey) {
	c.mu.Lock()
	c.nextNodeID++
	id := c.nextNodeID
	c.mu.Unlock()
	v4 := netip.AddrFrom4([4]byte{100, 64, byte(id >> 8), byte(id)})
	addrs := []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(tsaddr.Tailscale4To6(v4), 128)}
	var baseCaps tailcfg.NodeCapMap
	now := time.Now()
	ok := c.in.withNode(req.NodeKey, func(n *tailcfg.Node) {
		n.ID = id
		n.StableID = tailcfg.StableNodeID(fmt.Sprintf("n%dTSGWCNTRL", id))
		n.Addresses = slices.Clone(addrs)
		n.AllowedIPs = slices.Clone(addrs)
		n.Tags = slices.Clone(k.Tags)
		n.Created = now
		n.MachineAuthorized = !c.needsApproval(k)
		baseCaps = maps.Clone(n.CapMap)
	})
	if !ok {
		return
	}
	m := &nodeMeta{
		key:       req.NodeKey,
		id:        id,
		keyID:     k.ID,
		ephemeral: k.Ephemeral,
		created:   now,
		lastSeen:  now,
		baseCaps:  baseCaps,
	}
	if req.Hostinfo != nil {
		m.servicesHash = req.Hostinfo.ServicesHash
	}
	c.mu.Lock()
	c.nodes[req.NodeKey] = m
	c.mu.Unlock()
	log.Printf("control: node %d (%s) joined with key %s, tags %v", id, req.Hostinfo.Hostname, k.ID, k.Tags)
	c.recompute()
	c.in.poke()
}

// needsApproval: a node joining with k waits for an admin (POST /devices/{id}/authorized).
func (c *control) needsApproval(k *authKey) bool { return c.deviceApproval && !k.Preauthorized }

// unauthorized rewrites testcontrol's register answer to say the machine is not authorized yet
// (testcontrol has one RequireMachineAuth for all nodes; here it follows the key).
func unauthorized(body []byte) []byte {
	var res tailcfg.RegisterResponse
	if err := json.Unmarshal(body, &res); err != nil {
		return body
	}
	res.MachineAuthorized = false
	out, err := json.Marshal(res)
	if err != nil {
		return body
	}
	return out
}

// logout (a register with an expiry in the past): an ephemeral node goes at once, as with real
// control; any other keeps its entry with its key expired.
func (c *control) logout(nk key.NodePublic) {
	c.mu.Lock()
	m := c.nodes[nk]
	c.mu.Unlock()
	if m != nil && m.ephemeral {
		c.deleteNode(nk)
		return
	}
	c.in.withNode(nk, func(n *tailcfg.Node) { n.KeyExpiry = time.Now().Add(-time.Second) })
	c.in.poke()
}

func (c *control) deleteNode(nk key.NodePublic) bool {
	c.mu.Lock()
	m := c.nodes[nk]
	delete(c.nodes, nk)
	c.mu.Unlock()
	ok := c.in.deleteNode(nk)
	if m != nil {
		log.Printf("control: node %d removed", m.id)
	}
	c.s.SetNodeCapMap(nk, nil)
	c.s.SetSubnetRoutes(nk, nil)
	c.recompute()
	c.in.poke()
	return ok || m != nil
}

// holdMap tracks map streams (online, last seen) and notices a changed Hostinfo.ServicesHash, after
// which control asks the node over c2n what it advertises, as real control does.
func (c *control) holdMap(req *tailcfg.MapRequest) func() {
	nk := req.NodeKey
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.nodes[nk]
	if m == nil {
		return nil
	}
	now := time.Now()
	m.lastSeen = now
	if req.Stream && !req.ReadOnly {
		m.streams++
		if m.servicesHash != "" && !m.servicesKnown {
			go c.refreshServices(nk)
		}
		return func() {
			c.mu.Lock()
			m.streams--
			m.lastSeen = time.Now()
			c.mu.Unlock()
		}
	}
	if req.Hostinfo != nil && req.Hostinfo.ServicesHash != m.servicesHash {
		m.servicesHash = req.Hostinfo.ServicesHash
		return func() { go c.refreshServices(nk) }
	}
	return nil
}

func (c *control) refreshServices(nk key.NodePublic) {
	c.mu.Lock()
	m := c.nodes[nk]
	if m == nil {
		c.mu.Unlock()
		return
	}
	if m.refreshing {
		m.refreshAgain = true
		c.mu.Unlock()
		return
	}
	m.refreshing = true
	c.mu.Unlock()
	for {
		services, err := c.fetchServices(nk)
		c.mu.Lock()
		if err != nil {
			log.Printf("control: GET /vip-services from node %d: %v", m.id, err)
		} else {
			m.services = services
			m.servicesKnown = true
		}
		again := m.refreshAgain
		m.refreshAgain = false
		if !again {
			m.refreshing = false
		}
		c.mu.Unlock()
		c.recompute()
		if !again {
			return
		}
	}
}

// fetchServices asks the node over c2n, retrying while its map stream is not up yet.
func (c *control) fetchServices(nk key.NodePublic) ([]*tailcfg.VIPService, error) {
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://node/vip-services", nil)
		res, err := (&http.Client{Transport: c.s.NodeRoundTripper(nk)}).Do(req)
		if err != nil {
			cancel()
			lastErr = err
			if c.s.Node(nk) == nil {
				return nil, err
			}
			continue
		}
		var out tailcfg.C2NVIPServicesResponse
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		cancel()
		if res.StatusCode != 200 || err != nil {
			lastErr = fmt.Errorf("status %d, %v", res.StatusCode, err)
			continue
		}
		return out.VIPServices, nil
	}
	return nil, lastErr
}

// recompute derives every node's capability map and routes and the tailnet's DNS records from the
// defined services and what each node reported: a node listing a service gets its addresses in
// service-host; the first (lowest ID) node reporting it Active gets the VIP routed to it.
func (c *control) recompute() {
	c.recomputeMu.Lock()
	defer c.recomputeMu.Unlock()

	type plan struct {
		m        *nodeMeta
		mappings tailcfg.ServiceIPMappings
		routes   []netip.Prefix
	}
	c.mu.Lock()
	var plans []*plan
	byKey := map[key.NodePublic]*plan{}
	for _, m := range c.nodes {
		p := &plan{m: m}
		plans = append(plans, p)
		byKey[m.key] = p
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].m.id < plans[j].m.id })
	names := slices.Sorted(maps.Keys(c.services))
	var records []tailcfg.DNSRecord
	var certDomains []string
	for _, name := range names {
		svc := c.services[name]
		var primary *plan
		for _, p := range plans {
			for _, v := range p.m.services {
				if string(v.Name) != name {
					continue
				}
				if p.mappings == nil {
					p.mappings = tailcfg.ServiceIPMappings{}
				}
				p.mappings[tailcfg.ServiceName(name)] = slices.Clone(svc.addrs)
				if v.Active && primary == nil {
					primary = p
				}
			}
		}
		if primary != nil {
			for _, a := range svc.addrs {
				primary.routes = append(primary.routes, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		fqdn := strings.TrimPrefix(name, "svc:") + "." + c.domain
		certDomains = append(certDomains, fqdn)
		for _, a := range svc.addrs {
			records = append(records, tailcfg.DNSRecord{Name: fqdn, Value: a.String()})
		}
	}
	type apply struct {
		nk     key.NodePublic
		caps   tailcfg.NodeCapMap
		routes []netip.Prefix
		doCaps bool
		doRts  bool
	}
	var todo []apply
	for _, p := range plans {
		caps := maps.Clone(p.m.baseCaps)
		if caps == nil {
			caps = tailcfg.NodeCapMap{}
		}
		if len(p.mappings) > 0 {
			raw, _ := json.Marshal(p.mappings)
			caps[tailcfg.NodeAttrServiceHost] = []tailcfg.RawMessage{tailcfg.RawMessage(raw)}
		}
		capsJSON, _ := json.Marshal(caps)
		routesJSON, _ := json.Marshal(p.routes)
		a := apply{nk: p.m.key, caps: caps, routes: p.routes}
		if string(capsJSON) != p.m.appliedCaps {
			a.doCaps = true
			p.m.appliedCaps = string(capsJSON)
		}
		if string(routesJSON) != p.m.appliedRoutes {
			a.doRts = true
			p.m.appliedRoutes = string(routesJSON)
		}
		if a.doCaps || a.doRts {
			todo = append(todo, a)
		}
	}
	c.mu.Unlock()

	for _, a := range todo {
		if a.doCaps {
			c.s.SetNodeCapMap(a.nk, a.caps)
		}
		if a.doRts {
			c.s.SetSubnetRoutes(a.nk, a.routes)
		}
	}
	// Every service's name is a cert domain of every node (testcontrol's DNS config is one for all;
	// it adds each node's own name), so a host can serve the service over HTTPS with a certificate
	// for it: tailscaled asks for one only for a domain in CertDomains.
	dns := &tailcfg.DNSConfig{Proxied: true, Domains: []string{c.domain}, ExtraRecords: records, CertDomains: certDomains}
	dnsJSON, _ := json.Marshal(dns)
	if string(dnsJSON) != c.appliedDNS {
		c.appliedDNS = string(dnsJSON)
		c.in.setDNS(dns)
		c.in.poke()
	}
}

// reapEphemeral removes ephemeral nodes offline longer than the timeout, as real control does.
func (c *control) reapEphemeral(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var gone []key.NodePublic
		c.mu.Lock()
		for nk, m := range c.nodes {
			if m.ephemeral && m.streams == 0 && time.Since(m.lastSeen) > c.ephemeralTimeout {
				gone = append(gone, nk)
			}
		}
		c.mu.Unlock()
		for _, nk := range gone {
			c.deleteNode(nk)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
