// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test double: an honest ERC-20 (anyone can mint) whose `decimals()` and
/// `symbol()` can each be switched to misbehave, as a token the registry trusts for its
/// transfers may still answer anything there. Modes (each function has its own):
/// 0 honest (6 decimals, symbol "ODD"); 1 revert with a reason; 2 burn all the gas;
/// 3 one word of all ones; 4 no data at all; 5 a string with a right-to-left override
/// ("U\u202eSDC"); 6 a string of 5,000 zero bytes; 7 a string that is not UTF-8;
/// 8 a string offset beyond the data; 9 a bytes32 ("MKR"-era tokens: "OLD", or 255 for
/// decimals); 10 a string with a control character ("OD\nD").
/// With `strictApprove`, `approve` refuses to change a non-zero allowance to another
/// non-zero one (USDT's rule): an owner must approve 0 first.
contract OddMetadataToken is ERC20 {
    error ApproveFromNonZero(uint256 current);

    uint8 public decimalsMode;
    uint8 public symbolMode;
    bool public strictApprove;

    constructor() ERC20("Odd Metadata", "ODD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setModes(uint8 decimalsMode_, uint8 symbolMode_) external {
        decimalsMode = decimalsMode_;
        symbolMode = symbolMode_;
    }

    function setStrictApprove(bool on) external {
        strictApprove = on;
    }

    function approve(address spender, uint256 value) public override returns (bool) {
        uint256 current = allowance(msg.sender, spender);
        if (strictApprove && value != 0 && current != 0) revert ApproveFromNonZero(current);
        return super.approve(spender, value);
    }

    function decimals() public view override returns (uint8) {
        uint8 m = decimalsMode;
        if (m == 9) {
            assembly {
                mstore(0, 255)
                return(0, 32)
            }
        }
        _odd(m);
        return 6;
    }

    function symbol() public view override returns (string memory) {
        uint8 m = symbolMode;
        if (m == 9) {
            assembly {
                mstore(0, "OLD")
                return(0, 32)
            }
        }
        _odd(m);
        return super.symbol();
    }

    /// @dev Answers for the caller (assembly `return` ends the whole call) unless honest.
    function _odd(uint8 m) private pure {
        if (m == 0) return;
        if (m == 1) revert("no metadata here");
        if (m == 2) {
            assembly {
                invalid()
            }
        }
        if (m == 3) {
            assembly {
                mstore(0, not(0))
                return(0, 32)
            }
        }
        if (m == 4) {
            assembly {
                return(0, 0)
            }
        }
        if (m == 5) {
            assembly {
                mstore(0, 0x20)
                mstore(0x20, 7)
                mstore(0x40, hex"55e280ae534443") // "U" U+202E "SDC"
                return(0, 0x60)
            }
        }
        if (m == 6) {
            assembly {
                mstore(0, 0x20)
                mstore(0x20, 5000)
                mstore(add(0x40, 5000), 0) // expand memory: zero bytes all the way
                return(0, add(0x40, 5024))
            }
        }
        if (m == 7) {
            assembly {
                mstore(0, 0x20)
                mstore(0x20, 3)
                mstore(0x40, hex"4fffd0")
                return(0, 0x60)
            }
        }
        if (m == 8) {
            assembly {
                mstore(0, 0x1000)
                mstore(0x20, 3)
                return(0, 0x40)
            }
        }
        if (m == 10) {
            assembly {
                mstore(0, 0x20)
                mstore(0x20, 4)
                mstore(0x40, hex"4f440a44")
                return(0, 0x60)
            }
        }
    }
}
