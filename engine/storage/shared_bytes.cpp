#include "engine/storage/shared_bytes.h"

#include <algorithm>

namespace copycat::storage {

SharedBytes::SharedBytes(std::string data) {
  auto owned = std::make_shared<const std::string>(std::move(data));
  m_bytes = *owned;
  m_owner = std::move(owned);
}

SharedBytes SharedBytes::slice(std::size_t offset, std::size_t length) const {
  return SharedBytes(m_owner, m_bytes.substr(std::min(offset, m_bytes.size()), length));
}

}  // namespace copycat::storage
