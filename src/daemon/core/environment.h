// Environment: a deploy's environment ("K=V" entries, in order) as an immutable value shared
// by content. Thread-safe: a value is never changed once made, and the table that interns
// them takes a lock.
//
// Every server keeps the request it was deployed with, and the app history keeps the
// versions an app ran: each holds an environment, and deploys from one shell have equal ones
// (bench/RESULTS.md, "Apps": 1.8 KiB a copy, two copies per app). Made from a list, an
// Environment is looked up by content among those alive, so that equal environments are one
// copy in the daemon; the last Environment that holds a copy frees it and its table entry.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace serverswap::daemon {

class Environment {
 public:
  using List = std::vector<std::string>;
  using const_iterator = List::const_iterator;
  using iterator = const_iterator;  // read-only: gtest and range-for see a container
  using value_type = std::string;

  Environment() = default;  // empty
  // Not explicit: an Environment is the list it was made from, interned (`spec.env =
  // request.env`, `spec.env = {"A=1"}`).
  Environment(List entries);  // NOLINT(google-explicit-constructor)
  Environment(std::initializer_list<std::string> entries) : Environment(List(entries)) {}

  const List& list() const { return entries_ ? *entries_ : no_entries(); }
  const_iterator begin() const { return list().begin(); }
  const_iterator end() const { return list().end(); }
  size_t size() const { return list().size(); }
  bool empty() const { return size() == 0; }

  // A copy of the entries, changed by `edit` and interned again: the environment a server is
  // spawned with is its request's plus the daemon's own variables.
  template <typename Edit>
  Environment edited(Edit&& edit) const {
    List entries = list();
    edit(entries);
    return Environment(std::move(entries));
  }

  // Equal content. Interned copies of equal content are one, so this is mostly a pointer
  // comparison; the content is compared when the pointers differ.
  friend bool operator==(const Environment& a, const Environment& b) {
    return a.entries_ == b.entries_ || a.list() == b.list();
  }
  // Whether `a` and `b` share one copy (for tests).
  static bool same_copy(const Environment& a, const Environment& b) {
    return a.entries_ == b.entries_;
  }
  // Distinct environments alive (the interning table's size), for tests.
  static size_t interned();

 private:
  static const List& no_entries();
  std::shared_ptr<const List> entries_;  // null: empty
};

}  // namespace serverswap::daemon
