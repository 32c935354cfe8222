// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test double: an ERC-20 anyone can mint that behaves until a switch is flipped,
/// then misbehaves on every transfer (minting and burning stay honest). What an upgradeable
/// or admin-controlled token listed in the registry can turn into. Modes:
/// 0 honest; 1 revert with a short custom error; 2 burn all the gas it is given;
/// 3 revert with `param` bytes of data (megabytes: memory the caller pays to copy);
/// 4 fee on transfer: `param` basis points of each transfer are burnt;
/// 5 blocklist: a transfer from or to a blocked address reverts;
/// 6 re-entrant: calls `reentry` with `reentryData` first, bubbling up its revert;
/// 7 fee on top: the sender pays `param` basis points more than `value`, burnt.
contract HostileToken is ERC20 {
    error Switched(uint8 mode);
    error Blocked(address account);

    uint8 public mode;
    uint256 public param;
    mapping(address account => bool) public blocked;
    address public reentry;
    bytes public reentryData;

    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setMode(uint8 mode_, uint256 param_) external {
        mode = mode_;
        param = param_;
    }

    function setBlocked(address account, bool on) external {
        blocked[account] = on;
    }

    function setReentry(address target, bytes calldata data) external {
        reentry = target;
        reentryData = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        uint8 m = mode;
        if (m == 0 || from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        if (m == 1) revert Switched(m);
        if (m == 2) {
            assembly {
                invalid()
            }
        }
        if (m == 3) {
            uint256 size = param;
            assembly {
                revert(0, size)
            }
        }
        if (m == 4) {
            uint256 burnt = (value * param) / 10_000;
            super._update(from, address(0), burnt);
            super._update(from, to, value - burnt);
            return;
        }
        if (m == 7) {
            super._update(from, address(0), (value * param) / 10_000);
            super._update(from, to, value);
            return;
        }
        if (m == 5) {
            if (blocked[from]) revert Blocked(from);
            if (blocked[to]) revert Blocked(to);
        }
        if (m == 6 && reentry != address(0)) {
            (bool ok, bytes memory data) = reentry.call(reentryData);
            if (!ok) {
                assembly {
                    revert(add(data, 0x20), mload(data))
                }
            }
        }
        super._update(from, to, value);
    }
}
