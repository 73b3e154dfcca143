#include "daemon/core/environment.h"

#include <functional>
#include <mutex>
#include <unordered_map>

namespace serverswap::daemon {

namespace {

using List = Environment::List;

size_t hash_of(const List& entries) {
  size_t hash = entries.size();
  for (const auto& entry : entries)
    hash = (hash ^ std::hash<std::string>{}(entry)) * 1099511628211u;  // FNV-style mixing
  return hash;
}

// The environments alive, by the hash of their content. A copy's deleter erases its entry:
// the table never keeps an environment alive, nor an entry after its copy is gone.
class InternTable {
 public:
  std::shared_ptr<const List> intern(List entries) {
    size_t hash = hash_of(entries);
    // Copies found and not equal are released after the lock: the last reference to one
    // (another thread dropped its own meanwhile) runs its deleter, which takes the lock.
    std::vector<std::shared_ptr<const List>> others;
    std::lock_guard lock(mutex_);
    auto [first, last] = by_hash_.equal_range(hash);
    for (auto it = first; it != last; ++it) {
      // Expired: its deleter is on its way to erase the entry; a new copy is made beside.
      auto copy = it->second.copy.lock();
      if (copy && *copy == entries) return copy;
      if (copy) others.push_back(std::move(copy));
    }
    const List* raw = new List(std::move(entries));
    std::shared_ptr<const List> copy(raw, [this, hash](const List* gone) {
      erase(hash, gone);
      delete gone;
    });
    by_hash_.emplace(hash, Entry{raw, copy});
    return copy;
  }

  size_t size() {
    std::lock_guard lock(mutex_);
    return by_hash_.size();
  }

 private:
  struct Entry {
    const List* raw;  // tells the entry of a copy being freed from a newer one of its content
    std::weak_ptr<const List> copy;
  };

  void erase(size_t hash, const List* gone) {
    std::lock_guard lock(mutex_);
    auto [first, last] = by_hash_.equal_range(hash);
    for (auto it = first; it != last; ++it)
      if (it->second.raw == gone) {
        by_hash_.erase(it);
        return;
      }
  }

  std::mutex mutex_;
  std::unordered_multimap<size_t, Entry> by_hash_;
};

// Never destroyed: an Environment in a static object may outlive any order of destruction.
InternTable& table() {
  static auto* table = new InternTable;
  return *table;
}

}  // namespace

Environment::Environment(List entries) {
  if (!entries.empty()) entries_ = table().intern(std::move(entries));
}

size_t Environment::interned() {
  return table().size();
}

const List& Environment::no_entries() {
  static const List none;
  return none;
}

}  // namespace serverswap::daemon
