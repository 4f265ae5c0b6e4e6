package main

// The admin API: JSON in the shapes of the Tailscale API's keys, devices and vip-services, so the
// fake Tailscale API can pass them through. It has no authentication: it listens on loopback for
// the test process only.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"message": fmt.Sprintf(format, args...)})
}

func (c *control) adminHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]bool{"ok": true}) })

	m.HandleFunc("POST /keys", c.createKey)
	m.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := []map[string]any{}
		for _, id := range sortedKeyIDs(c.keys) {
			out = append(out, keyJSON(c.keys[id], false))
		}
		writeJSON(w, 200, map[string]any{"keys": out})
	})
	m.HandleFunc("GET /keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		k := c.keys[r.PathValue("id")]
		if k == nil {
			writeError(w, 404, "not found")
			return
		}
		writeJSON(w, 200, keyJSON(k, false))
	})
	m.HandleFunc("DELETE /keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.keys[r.PathValue("id")] == nil {
			writeError(w, 404, "not found")
			return
		}
		delete(c.keys, r.PathValue("id"))
		w.WriteHeader(200)
	})

	m.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"devices": c.devices()})
	})
	m.HandleFunc("GET /devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		if d := c.device(r.PathValue("id")); d != nil {
			writeJSON(w, 200, d)
			return
		}
		writeError(w, 404, "not found")
	})
	m.HandleFunc("DELETE /devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		nk, ok := c.nodeKeyOf(r.PathValue("id"))
		if !ok || !c.deleteNode(nk) {
			writeError(w, 404, "not found")
			return
		}
		w.WriteHeader(200)
	})
	m.HandleFunc("POST /devices/{id}/tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Tags []string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, 400, "invalid JSON body")
			return
		}
		for _, t := range body.Tags {
			if !strings.HasPrefix(t, "tag:") {
				writeError(w, 400, "tags: %q does not start with tag:", t)
				return
			}
		}
		nk, ok := c.nodeKeyOf(r.PathValue("id"))
		if !ok || !c.in.withNode(nk, func(n *tailcfg.Node) { n.Tags = slices.Clone(body.Tags) }) {
			writeError(w, 404, "not found")
			return
		}
		c.in.poke()
		w.WriteHeader(200)
	})
	// Device approval, as the API's POST /device/{id}/authorized.
	m.HandleFunc("POST /devices/{id}/authorized", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Authorized *bool `json:"authorized"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Authorized == nil {
			writeError(w, 400, "body must be {\"authorized\": true|false}")
			return
		}
		nk, ok := c.nodeKeyOf(r.PathValue("id"))
		if !ok || !c.in.withNode(nk, func(n *tailcfg.Node) { n.MachineAuthorized = *body.Authorized }) {
			writeError(w, 404, "not found")
			return
		}
		c.in.poke()
		w.WriteHeader(200)
	})
	// What each node last reported over c2n and what control routes to it: for tests and debugging.
	m.HandleFunc("GET /nodes/{id}/services", func(w http.ResponseWriter, r *http.Request) {
		nk, ok := c.nodeKeyOf(r.PathValue("id"))
		if !ok {
			writeError(w, 404, "not found")
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		meta := c.nodes[nk]
		if meta == nil {
			writeError(w, 404, "not found")
			return
		}
		var routes []netip.Prefix
		json.Unmarshal([]byte(meta.appliedRoutes), &routes)
		writeJSON(w, 200, map[string]any{"servicesHash": meta.servicesHash, "reported": meta.services, "routes": routes})
	})

	m.HandleFunc("GET /services", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := []map[string]any{}
		for _, name := range sortedServiceNames(c.services) {
			out = append(out, c.services[name].body)
		}
		writeJSON(w, 200, map[string]any{"vipServices": out})
	})
	m.HandleFunc("GET /services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		svc := c.services[r.PathValue("name")]
		if svc == nil {
			writeError(w, 404, "not found")
			return
		}
		writeJSON(w, 200, svc.body)
	})
	m.HandleFunc("PUT /services/{name}", c.putService)
	m.HandleFunc("DELETE /services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		_, ok := c.services[r.PathValue("name")]
		delete(c.services, r.PathValue("name"))
		c.mu.Unlock()
		if !ok {
			writeError(w, 404, "not found")
			return
		}
		c.recompute()
		w.WriteHeader(200)
	})
	// What control would put in every peer's netmap for each node it has (testcontrol's table, our
	// adopted ones or not), and whether the DERP relay holds a connection for the node's key: the
	// control side of lab.netmapDisagreements(), which tells a peer whose netmap is stale (control
	// knows a disco key or home DERP the device does not) from a device the relay cannot reach.
	m.HandleFunc("GET /debug/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"nodes": c.debugNodes()})
	})
	// The DERP relay's counters (packets forwarded and dropped, by reason): a lab device that never
	// answers shows up here as drops for an unknown or gone destination.
	m.HandleFunc("GET /debug/derp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if c.derp == nil {
			w.Write([]byte("{}"))
			return
		}
		w.Write([]byte(c.derp.ExpVar(false).String()))
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "no admin endpoint %s %s", r.Method, r.URL.Path)
	})
	return m
}

type keyRequest struct {
	Description   string `json:"description"`
	ExpirySeconds *int64 `json:"expirySeconds"`
	Capabilities  struct {
		Devices struct {
			Create struct {
				Reusable      bool     `json:"reusable"`
				Ephemeral     bool     `json:"ephemeral"`
				Preauthorized bool     `json:"preauthorized"`
				Tags          []string `json:"tags"`
			} `json:"create"`
		} `json:"devices"`
	} `json:"capabilities"`
}

// createKey mints a key. Validation of what a real API would refuse (untagged keys from an OAuth
// client, descriptions) is the fake API's; control also mints untagged keys, for user devices.
func (c *control) createKey(w http.ResponseWriter, r *http.Request) {
	var req keyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "invalid JSON body: %v", err)
		return
	}
	create := req.Capabilities.Devices.Create
	for _, t := range create.Tags {
		if !strings.HasPrefix(t, "tag:") {
			writeError(w, 400, "capabilities.devices.create.tags: %q does not start with tag:", t)
			return
		}
	}
	expiry := int64(90 * 24 * 3600)
	if req.ExpirySeconds != nil {
		if *req.ExpirySeconds <= 0 {
			writeError(w, 400, "expirySeconds must be positive")
			return
		}
		expiry = *req.ExpirySeconds
	}
	now := time.Now().UTC()
	c.mu.Lock()
	c.keyCounter++
	id := fmt.Sprintf("k%dTSGWCNTRL", c.keyCounter)
	k := &authKey{
		ID:            id,
		Secret:        "tskey-auth-" + id + "-" + randomHex(16),
		Created:       now,
		Expires:       now.Add(time.Duration(expiry) * time.Second),
		Description:   req.Description,
		Reusable:      create.Reusable,
		Ephemeral:     create.Ephemeral,
		Preauthorized: create.Preauthorized,
		Tags:          slices.Clone(create.Tags),
	}
	c.keys[id] = k
	out := keyJSON(k, true)
	c.mu.Unlock()
	writeJSON(w, 200, out)
}

func keyJSON(k *authKey, withSecret bool) map[string]any {
	tags := k.Tags
	if tags == nil {
		tags = []string{}
	}
	out := map[string]any{
		"id":          k.ID,
		"created":     k.Created.Format(time.RFC3339),
		"expires":     k.Expires.Format(time.RFC3339),
		"invalid":     (k.Used && !k.Reusable) || time.Now().After(k.Expires),
		"description": k.Description,
		"capabilities": map[string]any{"devices": map[string]any{"create": map[string]any{
			"reusable": k.Reusable, "ephemeral": k.Ephemeral, "preauthorized": k.Preauthorized, "tags": tags,
		}}},
	}
	if withSecret {
		out["key"] = k.Secret
	}
	return out
}

func sortedKeyIDs(m map[string]*authKey) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sortedServiceNames(m map[string]*service) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// putService stores a service (every field kept), allocating an IPv4 and an IPv6 address when the
// body names none. Rules about changing addresses are the fake API's.
func (c *control) putService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !strings.HasPrefix(name, "svc:") {
		writeError(w, 400, "service name %q must start with svc:", name)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
		writeError(w, 400, "invalid JSON body")
		return
	}
	body["name"] = name
	var addrs []netip.Addr
	if raw, ok := body["addrs"].([]any); ok {
		for _, a := range raw {
			s, _ := a.(string)
			addr, err := netip.ParseAddr(s)
			if err != nil {
				writeError(w, 400, "addrs: %q is not an IP address", s)
				return
			}
			addrs = append(addrs, addr)
		}
	}
	c.mu.Lock()
	if len(addrs) == 0 {
		if old := c.services[name]; old != nil {
			addrs = slices.Clone(old.addrs)
		} else {
			c.svcCounter++
			n := c.svcCounter
			addrs = []netip.Addr{
				netip.AddrFrom4([4]byte{100, 100, byte(n / 250), byte(n%250 + 1)}),
				netip.MustParseAddr(fmt.Sprintf("fd7a:115c:a1e0:ab12::%x", n)),
			}
		}
	}
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	body["addrs"] = strs
	c.services[name] = &service{name: name, addrs: addrs, body: body}
	c.mu.Unlock()
	c.recompute()
	writeJSON(w, 200, body)
}

// nodeKeyOf finds a node by the API's legacy id or its stable nodeId.
func (c *control) nodeKeyOf(id string) (key.NodePublic, bool) {
	for _, n := range c.s.AllNodes() {
		if strconv.FormatInt(int64(n.ID), 10) == id || string(n.StableID) == id {
			return n.Key, true
		}
	}
	return key.NodePublic{}, false
}

func (c *control) device(id string) map[string]any {
	for _, d := range c.devices() {
		if d["id"] == id || d["nodeId"] == id {
			return d
		}
	}
	return nil
}

// devices lists the nodes control has in the API's device shape.
func (c *control) devices() []map[string]any {
	nodes := c.s.AllNodes()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []map[string]any{}
	now := time.Now().UTC()
	for _, n := range nodes {
		m := c.nodes[n.Key]
		if m == nil {
			continue
		}
		addrs := []string{}
		for _, p := range n.Addresses {
			addrs = append(addrs, p.Addr().String())
		}
		tags := slices.Clone(n.Tags)
		if tags == nil {
			tags = []string{}
		}
		advertised := []string{}
		if n.Hostinfo.Valid() {
			for _, p := range n.Hostinfo.RoutableIPs().All() {
				advertised = append(advertised, p.String())
			}
		}
		online := m.streams > 0
		lastSeen := m.lastSeen.UTC()
		if online {
			lastSeen = now
		}
		d := map[string]any{
			"id":                 strconv.FormatInt(int64(n.ID), 10),
			"nodeId":             string(n.StableID),
			"name":               strings.TrimSuffix(n.Name, "."),
			"hostname":           n.Hostinfo.Hostname(),
			"addresses":          addrs,
			"tags":               tags,
			"authorized":         n.MachineAuthorized,
			"isEphemeral":        m.ephemeral,
			"isExternal":         false,
			"connectedToControl": online,
			"lastSeen":           lastSeen.Format(time.RFC3339),
			"created":            m.created.UTC().Format(time.RFC3339),
			"os":                 n.Hostinfo.OS(),
			"clientVersion":      n.Hostinfo.IPNVersion(),
			"keyExpiryDisabled":  len(n.Tags) > 0,
			"nodeKey":            n.Key.String(),
			"machineKey":         n.Machine.String(),
			"enabledRoutes":      []string{},
			"advertisedRoutes":   advertised,
			"authKeyId":          m.keyID,
		}
		if !n.KeyExpiry.IsZero() {
			d["expires"] = n.KeyExpiry.UTC().Format(time.RFC3339)
		}
		out = append(out, d)
	}
	return out
}

// debugNodes lists every node of testcontrol's table, sorted by ID, with what peers need to reach
// it (disco key, home DERP region, endpoints) and whether it is adopted (ours), streaming, and
// connected to the DERP relay.
func (c *control) debugNodes() []map[string]any {
	nodes := c.s.AllNodes()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []map[string]any{}
	for _, n := range nodes {
		m := c.nodes[n.Key]
		endpoints := []string{}
		for _, e := range n.Endpoints {
			endpoints = append(endpoints, e.String())
		}
		d := map[string]any{
			"id":        strconv.FormatInt(int64(n.ID), 10),
			"hostname":  n.Hostinfo.Hostname(),
			"nodeKey":   n.Key.String(),
			"discoKey":  n.DiscoKey.String(),
			"homeDERP":  n.HomeDERP,
			"endpoints": endpoints,
			"adopted":   m != nil,
			"streams":   0,
		}
		if m != nil {
			d["streams"] = m.streams
		}
		if c.derp != nil {
			d["derpConnected"] = c.derp.IsClientConnectedForTest(n.Key)
		}
		out = append(out, d)
	}
	return out
}
