package faxapp

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// phoneNumber is the v2.1 phone number object, fields in Phaxio's order.
type phoneNumber struct {
	PhoneNumber   string  `json:"phone_number"`
	City          string  `json:"city"`
	State         string  `json:"state"`
	Country       string  `json:"country"`
	Cost          int     `json:"cost"`
	LastBilledAt  string  `json:"last_billed_at"`
	ProvisionedAt string  `json:"provisioned_at"`
	CallbackURL   *string `json:"callback_url"`
	AtaName       *string `json:"ata_name"`
}

// areaCodes gives city and state for a few area codes; others are "Simulated".
var areaCodes = map[string][2]string{
	"205": {"Birmingham, Clanton, Jasper", "Alabama"},
	"212": {"New York City", "New York"},
	"312": {"Chicago", "Illinois"},
	"415": {"San Francisco", "California"},
	"512": {"Austin", "Texas"},
	"617": {"Boston", "Massachusetts"},
	"646": {"New York City", "New York"},
	"720": {"Denver", "Colorado"},
	"773": {"Chicago", "Illinois"},
	"877": {"Toll free", ""},
}

// createNumber handles POST /phone_numbers: provisions +1{area_code}555{4 digits}.
func (s *Service) createNumber(w http.ResponseWriter, r *http.Request) {
	form, _, cleanup, ok := s.parseBody(w, r)
	if !ok {
		return
	}
	defer cleanup()
	cc := strings.TrimPrefix(strings.TrimSpace(form.Get("country_code")), "+")
	area := strings.TrimSpace(form.Get("area_code"))
	switch {
	case cc != "1":
		fail(w, http.StatusUnprocessableEntity, "country_code must be 1: only North American numbers are simulated")
		return
	case len(area) != 3 || digitsOf(area) != area || area[0] < '2':
		fail(w, http.StatusUnprocessableEntity, "area_code must be a three-digit North American area code")
		return
	}
	city := areaCodes[area]
	if city[0] == "" {
		city = [2]string{"Simulated City", "Simulated State"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var number string
	for tries := 0; ; tries++ {
		if tries == 10000 {
			fail(w, http.StatusUnprocessableEntity, "No numbers available in area code "+area)
			return
		}
		s.numCounter++
		rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), s.numCounter))
		number = fmt.Sprintf("+1%s555%04d", area, rng.IntN(10000))
		if s.numbers[number] == nil {
			break
		}
	}
	now := s.cfg.Now().Format(timeLayout)
	n := &phoneNumber{
		PhoneNumber: number, City: city[0], State: city[1], Country: "United States of America",
		Cost: 200, LastBilledAt: now, ProvisionedAt: now,
	}
	if cb := strings.TrimSpace(form.Get("callback_url")); cb != "" {
		n.CallbackURL = fax.Str(cb)
	}
	s.numbers[number] = n
	s.numOrder = append(s.numOrder, number)
	success(w, "Number provisioned successfully!", *n)
}

// listNumbers handles GET /phone_numbers with the country_code and area_code filters, in
// provisioning order.
func (s *Service) listNumbers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage, valid := pageParams(w, q)
	if !valid {
		return
	}
	cc := strings.TrimPrefix(q.Get("country_code"), "+")
	area := q.Get("area_code")
	s.mu.Lock()
	defer s.mu.Unlock()
	matches := []phoneNumber{}
	for _, num := range s.numOrder {
		if cc != "" && cc != "1" || area != "" && !strings.HasPrefix(num, "+1"+area) {
			continue
		}
		matches = append(matches, *s.numbers[num])
	}
	writeJSON(w, http.StatusOK, envelope{
		Success: true, Message: "Retrieved user phone numbers successfully",
		Data:   pageOf(matches, page, perPage),
		Paging: &paging{Total: len(matches), PerPage: perPage, Page: page},
	})
}

// findNumber accepts the number with or without its leading + (a literal + in a path is kept,
// %2B decodes to it); s.mu must be held.
func (s *Service) findNumber(w http.ResponseWriter, raw string) *phoneNumber {
	num := strings.TrimSpace(raw)
	if !strings.HasPrefix(num, "+") {
		num = "+" + num
	}
	if n := s.numbers[num]; n != nil {
		return n
	}
	fail(w, http.StatusNotFound, "Phone number not found")
	return nil
}

func (s *Service) getNumber(w http.ResponseWriter, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.findNumber(w, raw); n != nil {
		success(w, "Retrieved phone number successfully", *n)
	}
}

func (s *Service) deleteNumber(w http.ResponseWriter, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.findNumber(w, raw)
	if n == nil {
		return
	}
	delete(s.numbers, n.PhoneNumber)
	s.numOrder = slices.DeleteFunc(s.numOrder, func(num string) bool { return num == n.PhoneNumber })
	success(w, "Number released successfully!", nil)
}
